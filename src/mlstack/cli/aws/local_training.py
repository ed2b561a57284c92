"""A training job through the SageMaker Python SDK v3 in local mode: `ModelTrainer` with
training_mode LOCAL_CONTAINER runs the training image (or a user's script in it) under a
container root of the caller's; what the job was named, why it failed, and its
model.tar.gz kept out of that root.

With a `SourceCode` (SOURCE_DIR, ENTRY_POINT, SOURCE_DIR/requirements.txt when there is
one), v3 starts its own driver in the image instead of the image's entrypoint, and the
image's MLflow plugin tracks and tags the script's runs from the hyperparameters all the
same; the script must save an MLflow model into SM_MODEL_DIR to be served after.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlstack.cli.aws.common import AwsScriptError

BASE_JOB_NAME = "mlstack-local"  # v3 appends the time: mlstack-local-YYYYmmddHHMMSS
CHANNELS = ("train", "test")
COMPOSE_FILE = "docker-compose.yaml"  # what SDK v3 writes into a job's local_container_root


def train(
    session: Any,
    container_root: Path,
    *,
    image: str,
    data_dir: Path,
    hyperparameters: Mapping[str, str],
    environment: Mapping[str, str],
    source_code: Any,
) -> str:
    """Run the training job with container_root as v3's local_container_root; return the
    job's name (its model.tar.gz is under container_root/compressed_artifacts).

    environment: MLflow's credentials, as environment, not hyperparameters, which SageMaker
    records in the job's description."""
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, InputData
    from sagemaker.train.model_trainer import Mode

    trainer = ModelTrainer(
        training_mode=Mode.LOCAL_CONTAINER,
        sagemaker_session=session,
        training_image=image,
        base_job_name=BASE_JOB_NAME,
        compute=Compute(instance_type="local_cpu", instance_count=1),
        hyperparameters=dict(hyperparameters),
        environment=dict(environment),
        source_code=source_code,
        local_container_root=str(container_root),
    )
    channels = [InputData(channel_name=name, data_source=str(data_dir / name)) for name in CHANNELS]
    try:
        trainer.train(input_data_config=channels)
    except ImportError as error:  # the SDK's way of saying docker compose is missing
        raise AwsScriptError(
            f"{str(error).split('. ')[0]}: SageMaker local mode runs `docker compose` "
            "(install Docker's compose plugin)"
        ) from None
    except RuntimeError:  # how the SDK reports a failed job (its compose file is written)
        reason = failure_reason(container_root)
        raise AwsScriptError(
            f"the training job {job_name_in(container_root)} failed"
            f"{': ' + reason if reason else ''}; its log is above"
        ) from None
    return job_name_in(container_root)


def failure_reason(container_root: Path) -> str:
    """The last line of the job's /opt/ml/output/failure (the image's own reason). v3's
    driver writes its own there instead: the traceback of the script's exit, said here as
    the exit status, or a note pointing at CloudWatch, where a local job has no logs ("")."""
    for path in container_root.glob("*/output/failure"):
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        if not lines or any("CloudWatch" in line for line in lines):
            continue
        exited = re.search(r"returned non-zero exit status (\d+)", lines[-1])
        if exited:
            return f"the script exited with status {exited.group(1)}"
        return lines[-1][:300]
    return ""


def job_name_in(container_root: Path) -> str:
    """The name of the SDK v3 local job run with container_root as its local_container_root,
    as v3 gave it to the container (TRAINING_JOB_NAME in the compose file it wrote there):
    ModelTrainer makes the name from base_job_name and the time, and in local mode does not
    return it."""
    import yaml

    compose = yaml.safe_load((container_root / COMPOSE_FILE).read_text())
    for service in compose["services"].values():
        for variable in service.get("environment") or []:
            name, _, value = variable.partition("=")
            if name == "TRAINING_JOB_NAME":
                return value
    raise AwsScriptError(f"no TRAINING_JOB_NAME in {container_root / COMPOSE_FILE}")


def keep_model(container_root: Path, output_dir: Path, job_name: str) -> Path:
    """Copy the job's model.tar.gz out of the container root: OUTPUT/JOB/model.tar.gz."""
    model = container_root / "compressed_artifacts" / "model.tar.gz"
    if not model.is_file():
        raise AwsScriptError(f"the training job {job_name} left no model.tar.gz")
    kept = output_dir / job_name / "model.tar.gz"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, kept)
    return kept
