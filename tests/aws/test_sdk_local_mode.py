"""Users' own SageMaker SDK programs in local mode, no AWS account: the reference training
script exactly as its authors wrote it (argparse, mlflow.set_tracking_uri, start_run,
log_params, log_metric, an unmodified mlflow.sklearn.log_model(model, "model")), with and
without a requirements.txt pinning an MLflow 2.x client, run by a few lines of SDK v2
(`Estimator` + `LocalSession`, in the v2 venv) and of SDK v3 (`ModelTrainer` in
LOCAL_CONTAINER mode) with the training image. Each run lands FINISHED in the tracking
server, tagged with its job, with metrics and a model; the inference image serves that model
through SDK v3's local session and answers the reference's request as the model itself does.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlstack.cli.aws.local_endpoint import invoke_once, local_session
from mlstack.cli.aws.local_mode import (
    Route,
    release,
    remove_containers_under,
    route_to_tracking_server,
)
from mlstack.cli.aws.local_training import job_name_in
from mlstack.cli.channels import reference_payload, target_and_features
from mlstack.core.ports import free_port
from support.data import write_channels
from support.images import ROOT
from support.metrics import assert_metrics_match
from support.stack import point_mlflow_at

pytestmark = [pytest.mark.aws, pytest.mark.docker]

REFERENCE = ROOT / "tests" / "support" / "reference_script"  # train.py, requirements-*.txt
SUPPORT = ROOT / "tests" / "support"
PROGRAMS = {
    "v2": SUPPORT / "sdk2" / "train_local.py",
    "v3": SUPPORT / "sdk3" / "train_local.py",
    "v2-serve": SUPPORT / "sdk2" / "serve_local.py",
}
SDK2_PYTHON = ROOT / ".venv-sdk2" / "bin" / "python"
REGION = "us-east-1"
# The SDKs' documented config file: their usage telemetry off, as a user opts out.
SDK_CONFIG = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""
# requirements.txt (none: the image's own client), and the MLflow the script then logs with.
PINS = {"image's MLflow": None, "mlflow 2.12.1": "requirements-mlflow-2.12.1.txt"}
CLIENTS = {"image's MLflow": f"mlflow {mlflow.__version__}", "mlflow 2.12.1": "mlflow 2.12.1"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_channels(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def route(tracking_server, training_image: str) -> Iterator[Route]:
    """The test's tracking server on the `sagemaker-local` network, as the jobs reach it."""
    found = route_to_tracking_server(tracking_server.uri_from_host, training_image)
    try:
        yield found
    finally:
        release(found)


def sdk_python(sdk: str) -> str:
    """The interpreter with that SDK: the host venv's has v3; v2 has its own venv."""
    if sdk == "v3":
        return sys.executable
    if not SDK2_PYTHON.is_file():
        pytest.fail("the SageMaker SDK v2 venv is missing: run make venv-sdk2")
    return str(SDK2_PYTHON)


def program_env(tmp_path: Path, script_env) -> dict[str, str]:
    """A user's shell with no AWS account: a region, no credentials, telemetry off, and
    every AWS endpoint a closed port, so any call the SDK made to AWS would fail the job."""
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(SDK_CONFIG)
    return script_env(
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        SAGEMAKER_USER_CONFIG_OVERRIDE=str(config),
    )


def source_dir(tmp_path: Path, requirements: str | None) -> Path:
    """The reference script as its authors ship it, with their requirements.txt if any."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REFERENCE / "train.py", source / "train.py")
    if requirements:
        shutil.copy(REFERENCE / requirements, source / "requirements.txt")
    return source


def run_program(program: str, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> str:
    """The user's program, in cwd; its stdout (the SDK's and the containers' logs go to
    log, which a failure names)."""
    result = subprocess.run(
        [sdk_python(program[:2]), str(PROGRAMS[program]), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    log.write_text(result.stdout + "\n--- stderr:\n" + result.stderr)
    assert result.returncode == 0, f"{log}: {result.stderr[-3000:]}"
    return result.stdout


def served_by_v3(image: str, model_dir: Path, payload: str, root: Path) -> float:
    """The inference image's answer to the payload, through v3's local session."""
    root.mkdir()
    session = local_session(REGION, root, free_port())
    try:
        answer = invoke_once(session, image, model_dir.as_uri(), "reference", payload)
    finally:
        remove_containers_under(root)
    [prediction] = answer.json()["predictions"]
    return float(prediction)


def served_by_v2(image: str, model_dir: Path, payload: str, root: Path, env) -> float:
    """The inference image's answer to the payload, through v2's Model.deploy."""
    root.mkdir()
    args = [image, model_dir.as_uri(), str(root), str(free_port()), payload]
    try:
        stdout = run_program("v2-serve", args, env, root, root / "program.log")
    finally:
        remove_containers_under(root)
    [prediction] = json.loads(stdout.strip().splitlines()[-1])["predictions"]
    return float(prediction)


@pytest.mark.parametrize("pin", list(PINS))
@pytest.mark.parametrize("sdk", ["v2", "v3"])
def test_reference_script_trains_tracks_and_serves(
    sdk: str,
    pin: str,
    route: Route,
    tracking_server,
    training_image: str,
    inference_image: str,
    data_dir: Path,
    tmp_path: Path,
    script_env,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    experiment = f"reference-{sdk}-{'pinned' if PINS[pin] else 'image'}"
    source = source_dir(tmp_path, PINS[pin])
    work, cwd = tmp_path / "work", tmp_path / "cwd"
    work.mkdir()
    cwd.mkdir()
    target, features = target_and_features(data_dir)
    hyperparameters = {
        "tracking_uri": route.uri,
        "experiment_name": experiment,
        "n-estimators": 20,
        "target": target,
        "features": " ".join(features or []),
    }
    args = [training_image, str(source), "train.py", str(data_dir), str(work)]
    env = program_env(tmp_path, script_env)
    try:
        stdout = run_program(
            sdk, [*args, json.dumps(hyperparameters)], env, cwd, tmp_path / "program.log"
        )
        if sdk == "v2":  # the program prints it; v3 gives it to the container only
            job_name = json.loads(stdout.strip().splitlines()[-1])["job_name"]
        else:
            job_name = job_name_in(work)
    finally:
        remove_containers_under(work)  # both SDKs leave their job containers stopped

    # The script logged with the client its requirements asked for (the image's otherwise).
    assert f"{CLIENTS[pin]}: model logged" in stdout

    # One run, finished, with its metrics and a model, tagged with the job that made it.
    client = MlflowClient(tracking_server.uri_from_host)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}: see {tmp_path / 'program.log'}"
    [run] = client.search_runs([found.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["n-estimators"] == "20"
    assert run.data.tags["sagemaker.training_job_name"] == job_name
    # As a user loads it. Globally: MLflow 3.17 resolves a model logged by MLflow 3 (under
    # the logged model, not the run) with the global tracking URI, not download's argument.
    point_mlflow_at(monkeypatch, tracking_server.uri_from_host)
    model_dir = Path(
        mlflow.artifacts.download_artifacts(
            f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path / "model")
        )
    )
    assert (model_dir / "MLmodel").is_file()
    assert_metrics_match(run.data.metrics, model_dir, data_dir / "test" / "test.csv", target)

    # The inference image serves it through SDK v3's local session (and, once, v2's
    # Model.deploy): the reference's request gets the model's own prediction.
    payload = reference_payload(data_dir / "test" / "test.csv", target, features)
    frame = pd.read_json(io.StringIO(payload), orient="split")
    own = float(mlflow.pyfunc.load_model(str(model_dir)).predict(frame)[0])
    served = served_by_v3(inference_image, model_dir, payload, tmp_path / "serve")
    assert served == pytest.approx(own, rel=1e-6)
    if sdk == "v2" and not PINS[pin]:
        served = served_by_v2(inference_image, model_dir, payload, tmp_path / "serve-v2", env)
        assert served == pytest.approx(own, rel=1e-6)

    # Nothing was written where the program ran: the job's files went to its container root.
    assert not os.listdir(cwd)
