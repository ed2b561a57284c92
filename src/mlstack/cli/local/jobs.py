"""SageMaker-style training jobs on the local stack: a job directory, a container, a result.

A job directory has the /opt/ml layout of SageMaker's training contract
(input/config/*.json, input/data/<channel>/, model/, output/) and is mounted
at /opt/ml of a `mlstack/training` container started as `docker run IMAGE train`.
A job that runs a user's script (script mode) also gets the script's source directory at
code/ (/opt/ml/code) and the reserved hyperparameters that name it, as the SageMaker SDK's
local mode does with `local_code`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import ImageNotFound, NotFound

from mlstack.cli.errors import CliError

JOB_LABEL = "mlstack.job"
CHANNELS = ("train", "test")
CODE_DIR = "/opt/ml/code"


class JobError(CliError):
    """A job could not be prepared or started; the message says why and what to do."""


@dataclass(frozen=True)
class JobResult:
    """How one training job ended."""

    name: str
    hyperparameters: dict[str, str]
    exit_code: int
    failure: str | None
    seconds: float


@dataclass(frozen=True)
class Script:
    """A user's training script: its source directory and its entry point within it."""

    source_dir: Path
    entry_point: str

    def hyperparameters(self, job_name: str) -> dict[str, str]:
        """The reserved hyperparameters the SageMaker SDK adds for script mode, JSON-encoded
        as it sends them (sagemaker.estimator.Framework / EstimatorBase with entry_point;
        in local mode with local_code the submit directory is the mounted /opt/ml/code)."""
        return {
            "sagemaker_program": json.dumps(self.entry_point),
            "sagemaker_submit_directory": json.dumps(CODE_DIR),
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": json.dumps(job_name),
        }


def make_script(source_dir: str, entry_point: str) -> Script | None:
    """SOURCE_DIR and ENTRY_POINT, both or neither (then the image's built-in model runs)."""
    if not source_dir and not entry_point:
        return None
    if not source_dir or not entry_point:
        raise JobError(
            "give both SOURCE_DIR (the script's directory) and ENTRY_POINT (the script in it), "
            "or neither for the built-in model"
        )
    path = Path(source_dir)
    if not path.is_dir():
        raise JobError(f"SOURCE_DIR {source_dir} is not a directory: point it at your script's")
    return Script(path, entry_point)


def write_job_dir(
    job_dir: Path,
    data_dir: Path,
    hyperparameters: Mapping[str, object],
    script: Script | None = None,
) -> None:
    """Lay out job_dir as SageMaker's /opt/ml: config files, channels, empty model/output,
    and the script's source at code/ in script mode."""
    for channel in CHANNELS:
        if not (data_dir / channel).is_dir():
            raise JobError(f"no {channel} channel in {data_dir}: run `make data` first")
    if job_dir.exists():
        shutil.rmtree(job_dir)
    config = job_dir / "input" / "config"
    config.mkdir(parents=True)
    # SageMaker writes every hyperparameter value as a string.
    strings = {key: str(value) for key, value in hyperparameters.items()}
    (config / "hyperparameters.json").write_text(json.dumps(strings, indent=2))
    (config / "inputdataconfig.json").write_text(
        json.dumps({c: {"ContentType": "text/csv", "TrainingInputMode": "File"} for c in CHANNELS})
    )
    (config / "resourceconfig.json").write_text(
        json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
        )
    )
    for channel in CHANNELS:
        shutil.copytree(data_dir / channel, job_dir / "input" / "data" / channel)
    for name in ("model", "output/data"):
        (job_dir / name).mkdir(parents=True)
    if script is not None:
        # A copy: pip may write build files into it, and the user's directory stays as it is.
        shutil.copytree(
            script.source_dir,
            job_dir / "code",
            ignore=shutil.ignore_patterns(".git", "__pycache__", ".venv", "*.pyc"),
        )


def run_job(
    client: docker.DockerClient,
    image: str,
    network: str,
    job_dir: Path,
    name: str,
    hyperparameters: Mapping[str, object],
    on_log: Callable[[str], None] | None = None,
    credentials: Mapping[str, str] | None = None,
) -> JobResult:
    """Run one job to its end; stream its log lines to on_log; remove its container.

    credentials: MLflow's (MLFLOW_TRACKING_USERNAME ...), given to the job's MLflow client,
    the built-in job's or a script's, as environment."""
    try:
        client.networks.get(network)
    except NotFound:
        raise JobError(f"network {network} does not exist: run `make local-up` first") from None
    started = time.monotonic()
    try:
        container = client.containers.run(
            image,
            ["train"],
            name=name,
            detach=True,
            network=network,
            environment={"TRAINING_JOB_NAME": name, **(credentials or {})},
            hostname="algo-1",  # resourceconfig.json's current_host, as on SageMaker
            volumes={str(job_dir.resolve()): {"bind": "/opt/ml", "mode": "rw"}},
            labels={JOB_LABEL: network},
        )
    except ImageNotFound:
        raise JobError(f"image {image} is missing: run `make build`") from None
    try:
        if on_log is not None:
            for line in container.logs(stream=True, follow=True):
                on_log(line.decode(errors="replace").rstrip())
        exit_code = container.wait()["StatusCode"]
    finally:
        container.remove(force=True)
    failure_file = job_dir / "output" / "failure"
    failure = failure_file.read_text().strip() if failure_file.exists() else None
    return JobResult(
        name=name,
        hyperparameters={k: str(v) for k, v in hyperparameters.items()},
        exit_code=exit_code,
        failure=failure,
        seconds=time.monotonic() - started,
    )


def stop_jobs(client: docker.DockerClient, network: str, timeout: int = 30) -> int:
    """Stop every job container of this stack (SIGTERM: their runs end KILLED)."""
    containers = client.containers.list(filters={"label": f"{JOB_LABEL}={network}"})
    for container in containers:
        container.stop(timeout=timeout)
    return len(containers)


def is_running(client: docker.DockerClient, name: str) -> bool:
    """Whether a container of that name exists and runs."""
    try:
        return client.containers.get(name).status in ("created", "running", "restarting")
    except NotFound:
        return False
