"""A user's reference-style script (tests/support/reference_script), unchanged, with the MLflow
client of the image or of its requirements.txt, run by the two drivers a SageMaker user meets:

- script mode, the image's own entry point (SDK v2 estimators, `mlstack local`): here the
  local loop's job runner, `docker run IMAGE train`;
- SageMaker SDK v3's ModelTrainer driver, which replaces the entry point
  (support.sdk3_driver: the SDK's own driver files).

Each run lands FINISHED in the session's tracking server with its params, metrics, the job's
tags and a model, and the inference image serves that model with the prediction the model
itself makes.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Run
from testcontainers.core.network import Network

from mlstack.cli.local import jobs as local_jobs
from support import reference_script, sdk3_driver
from support.containers import run_to_exit
from support.metrics import assert_metrics_match
from support.serving import serving
from support.stack import TrackingServer

from .helpers import FEATURES, job_hyperparameters

pytestmark = pytest.mark.docker

IMAGE_MLFLOW = "3.17.2"  # the image's own client (images/training/requirements.txt)
JOB_TIMEOUT = 300  # seconds; a job that installs a full MLflow 2.x/3.x downloads ~150 MB


@dataclass
class Job:
    """How a job ended, and where its container's /opt/ml was."""

    name: str
    status: int
    logs: str
    seconds: float
    opt_ml: Path


@pytest.fixture(scope="session")
def sdk3_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SageMaker SDK v3's released driver files (its wheels, unpacked)."""
    return sdk3_driver.sdk_files(tmp_path_factory.mktemp("sdk3"))


@pytest.fixture
def run_script_mode(
    training_image: str, docker_network: Network, channels: Path, tmp_path: Path
) -> Callable[[Path, dict[str, object]], Job]:
    """A job through the image's entry point, as `mlstack local` runs it."""

    def run(source: Path, hps: dict[str, object]) -> Job:
        name = f"ref-v2-{uuid.uuid4().hex[:8]}"
        job_dir = tmp_path / name
        script = local_jobs.Script(source, reference_script.ENTRY_POINT)
        values = {**hps, **script.hyperparameters(name)}
        local_jobs.write_job_dir(job_dir, channels, values, script)
        lines: list[str] = []
        result = local_jobs.run_job(
            docker.from_env(), training_image, docker_network.name, job_dir, name, values,
            on_log=lines.append,
        )  # fmt: skip
        return Job(name, result.exit_code, "\n".join(lines), result.seconds, job_dir)

    return run


@pytest.fixture
def run_sdk3(
    training_image: str, docker_network: Network, channels: Path, sdk3_site: Path, tmp_path: Path
) -> Callable[[Path, dict[str, object]], Job]:
    """A job through SDK v3's driver: its /opt/ml, its entrypoint, TRAINING_JOB_NAME."""

    def run(source: Path, hps: dict[str, object]) -> Job:
        name = f"ref-v3-{uuid.uuid4().hex[:8]}"
        opt_ml = tmp_path / name
        data = {"train": channels / "train", "test": channels / "test"}
        entry = reference_script.ENTRY_POINT
        sdk3_driver.write_opt_ml(opt_ml, sdk3_site, source, entry, data, hps)
        exited = run_to_exit(
            training_image,
            entrypoint=sdk3_driver.entrypoint(sdk3_site),
            env={"TRAINING_JOB_NAME": name},
            network=docker_network,
            volumes={str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}},
            timeout=JOB_TIMEOUT,
        )
        return Job(name, exited.status, exited.logs, exited.seconds, opt_ml)

    return run


def only_run(client: MlflowClient, experiment: str) -> Run:
    """The one run of the experiment."""
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id]) if found else []
    assert len(runs) == 1, [r.info for r in runs]
    return runs[0]


@pytest.mark.parametrize(
    ("driver", "pin"),
    [
        ("script-mode", None),
        ("script-mode", "2.12.1"),
        ("script-mode", "2.22.5"),
        ("script-mode", "3.14.0"),
        ("sdk3", None),
        ("sdk3", "2.12.1"),
    ],
)
def test_reference_script_runs_unchanged_and_its_model_is_served(
    driver: str,
    pin: str | None,
    request: pytest.FixtureRequest,
    client: MlflowClient,
    tracking_server: TrackingServer,
    inference_image: str,
    docker_network: Network,
    channels: Path,
    tmp_path: Path,
) -> None:
    run_job = request.getfixturevalue("run_sdk3" if driver == "sdk3" else "run_script_mode")
    experiment = f"reference-{driver}-{pin or 'image'}-{uuid.uuid4().hex[:6]}"
    source = reference_script.source_dir(tmp_path / "source", pin)
    job = run_job(source, {**job_hyperparameters(tracking_server, experiment), "n-estimators": 10})
    assert job.status == 0, job.logs[-3000:]
    print(f"{driver} job with MLflow {pin or IMAGE_MLFLOW}: {job.seconds:.1f} s")
    assert f"mlflow {pin or IMAGE_MLFLOW}: model logged" in job.logs

    run = only_run(client, experiment)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"n-estimators": "10", "min-samples-leaf": "3"}
    assert set(run.data.metrics) == {f"AE-at-{q}th-percentile" for q in (10, 50, 90)}
    tags = run.data.tags
    assert tags["sagemaker.training_job_name"] == job.name
    assert tags["mlstack.entry_point"] == reference_script.ENTRY_POINT
    assert tags["sagemaker.channels"] == "test,train"
    assert tags["mlstack.image"].startswith("mlstack/training:")

    # The model: logged in the format the script's client defaults to in MLflow 2.x, which
    # the image's client now writes too (cloudpickle), and served with its own prediction.
    model_uri = f"runs:/{run.info.run_id}/model"
    flavor = mlflow.models.Model.load(model_uri).flavors["sklearn"]
    assert flavor["serialization_format"] == "cloudpickle"
    assert_metrics_match(run.data.metrics, model_uri, channels / "test" / "test.csv")
    test = pd.read_csv(channels / "test" / "test.csv")
    rows = test[FEATURES.split()].iloc[[0]]
    [expected] = mlflow.pyfunc.load_model(model_uri).predict(rows)
    env = {"MODEL_URI": model_uri, "MLFLOW_TRACKING_URI": tracking_server.uri_in_network}
    started = time.monotonic()
    with serving(inference_image, docker_network, env) as url:
        ready = time.monotonic() - started
        response = requests.post(
            f"{url}/invocations",
            data=rows.to_json(orient="split"),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    print(f"served {model_uri} in {ready:.1f} s")
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    assert prediction == pytest.approx(float(expected), rel=1e-9)


# --- what script mode gives a script, under SDK v3's driver ---------------------------------

BARE = """\
import mlflow

mlflow.start_run()  # no tracking URI, no experiment: the job's
mlflow.log_param("stage", "{stage}")
{ending}
"""


@pytest.mark.parametrize("fails", [False, True], ids=["finishes", "raises"])
def test_sdk3_driver_gives_the_script_the_jobs_tracking_tags_and_nesting(
    fails: bool,
    run_sdk3: Callable[[Path, dict[str, object]], Job],
    client: MlflowClient,
    tracking_server: TrackingServer,
    tmp_path: Path,
) -> None:
    experiment = f"sdk3-bare-{uuid.uuid4().hex[:6]}"
    parent = client.create_run(client.create_experiment(experiment)).info.run_id
    source = tmp_path / "source"
    source.mkdir()
    ending = 'raise ValueError("no rows for 2024")' if fails else "mlflow.end_run()"
    (source / "train.py").write_text(BARE.format(stage="bare", ending=ending))
    hps = {**job_hyperparameters(tracking_server, experiment), "parent-run-id": parent}
    job = run_sdk3(source, hps)

    assert (job.status != 0) is fails, job.logs[-3000:]
    runs = client.search_runs([client.get_run(parent).info.experiment_id])
    [run] = [r for r in runs if r.info.run_id != parent]
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == parent
    assert tags["sagemaker.training_job_name"] == job.name
    assert tags["sagemaker.instance_type"] == sdk3_driver.INSTANCE_TYPE
    assert tags["sagemaker.channels"] == "test,train"
    assert tags["mlstack.entry_point"] == "train.py"
    assert tags["mlflow.source.type"] == "JOB"
    assert tags["mlflow.source.name"] == job.name
    assert tags["mlstack.image"].startswith("mlstack/training:")
    assert "mlstack.job_key" not in tags  # no script-mode runner under v3's driver
    if fails:
        assert run.info.status == "FAILED"
        assert tags["mlstack.failure_reason"] == "ValueError: no rows for 2024"
        assert (job.opt_ml / "output" / "failure").read_text().strip()
    else:
        assert run.info.status == "FINISHED"


def test_sdk3_job_without_source_code_runs_the_built_in_model(
    training_image: str,
    docker_network: Network,
    tracking_server: TrackingServer,
    client: MlflowClient,
    channels: Path,
    tmp_path: Path,
) -> None:
    """No source code: ModelTrainer sets no entrypoint, so the image's own `train` runs, with
    the config files of v3's local mode (values written by safe_serialize, not JSON-quoted)."""
    experiment = f"sdk3-builtin-{uuid.uuid4().hex[:6]}"
    opt_ml = tmp_path / "opt_ml"
    hps = job_hyperparameters(tracking_server, experiment)
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    values = {key: sdk3_driver.serialize(value) for key, value in hps.items()}
    (config / "hyperparameters.json").write_text(json.dumps(values))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"],
                    "network_interface_name": "ethwe",
                    "current_instance_type": sdk3_driver.INSTANCE_TYPE})
    )  # fmt: skip
    (config / "inputdataconfig.json").write_text(
        json.dumps({c: {"TrainingInputMode": "File"} for c in ("train", "test")})
    )
    for channel in ("train", "test"):
        shutil.copytree(channels / channel, opt_ml / "input" / "data" / channel)
    for name in ("model", "output/data"):
        (opt_ml / name).mkdir(parents=True)
    name = f"builtin-v3-{uuid.uuid4().hex[:6]}"
    exited = run_to_exit(
        training_image,
        env={"TRAINING_JOB_NAME": name},
        network=docker_network,
        volumes={str(opt_ml): {"bind": "/opt/ml", "mode": "rw"}},
        timeout=120,
    )
    assert exited.status == 0, exited.logs[-3000:]
    run = only_run(client, experiment)
    assert run.info.status == "FINISHED"
    assert run.data.tags["sagemaker.training_job_name"] == name
    assert (opt_ml / "model" / "MLmodel").is_file()
