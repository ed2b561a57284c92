"""Script mode: a user's training script, written for SageMaker's scikit-learn container,
run unchanged by the training image through the same job runner as `make local-train` and
`make local-hpo` (mlstack.cli.local.jobs), tracked in the session's
tracking server, and its logged model served by the inference image.

The example script (examples/gradient_boosting) pins an MLflow 2.x client in its
requirements.txt, so each of its jobs also checks that such a client's runs and models land
in the 3.17 server, and that the image's runner and MLflow plugin survive the install.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from testcontainers.core.network import Network

from mlstack.cli.local import jobs as local_jobs
from mlstack.cli.main import cli
from mlstack.training.paths import OptML
from support.containers import logs_of
from support.images import ROOT
from support.metrics import assert_metrics_match
from support.serving import serving
from support.stack import TrackingServer, point_mlflow_at
from support.waiting import wait_until

from .helpers import FEATURES, job_hyperparameters, training_container

pytestmark = pytest.mark.docker

EXAMPLE = ROOT / "examples" / "gradient_boosting"
MLFLOW_2 = "2.22.1"  # what the example's requirements.txt pins


@pytest.fixture
def loop(
    training_image: str,
    docker_network: Network,
    tracking_server: TrackingServer,
    channels: Path,
    tmp_path: Path,
) -> Callable[..., None]:
    """`mlstack local` as the Makefile calls it, against the test session's stack;
    the example script as SOURCE_DIR / ENTRY_POINT; job directories under tmp_path."""

    def run(experiment: str, *command: str) -> None:
        cli.main(
            [
                "--env-file", os.devnull, "local",
                "--network", docker_network.name,
                "--tracking-uri", tracking_server.uri_from_host,
                "--tracking-uri-in-network", tracking_server.uri_in_network,
                "--experiment-name", experiment,
                "--model-name", f"{experiment}-model",
                "--data-dir", str(channels),
                "--jobs-dir", str(tmp_path),
                "--image", training_image,
                *command,
                "--source-dir", str(EXAMPLE), "--entry-point", "train.py",
            ],
            standalone_mode=False,
        )  # fmt: skip

    return run


def runs_in(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def test_sklearn_container_script_runs_unchanged_and_its_model_is_served(
    loop: Callable[..., None],
    inference_image: str,
    tracking_server: TrackingServer,
    docker_network: Network,
    client: MlflowClient,
    channels: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    experiment = f"script-mode-{uuid.uuid4().hex[:6]}"
    loop(experiment, "train", "--n-estimators", "30", "--min-samples-leaf", "2")
    log = capsys.readouterr().out
    # The toolkit's steps, in the job's log: install, then the script, its metric lines.
    assert re.search(rf"Successfully installed .*mlflow-skinny-{re.escape(MLFLOW_2)}", log), log
    assert "train.py: started" in log
    assert "AE-at-50th-percentile: " in log

    # The bare mlflow.start_run() tracked into the job's server and experiment.
    [run] = runs_in(client, experiment)
    job_name = run.data.tags["sagemaker.training_job_name"]
    assert job_name.startswith("train-")
    assert run.info.status == "FINISHED"
    assert run.data.params["n-estimators"] == "30"
    assert run.data.params["min-samples-leaf"] == "2"
    # The script's metrics are its model's errors on the held-out set, worked out here.
    saved_model = tmp_path / job_name / "model"
    assert_metrics_match(run.data.metrics, saved_model, channels / "test" / "test.csv")
    # Tagged with the job's identity by the image's MLflow plugin, with no help from the script.
    tags = run.data.tags
    assert tags["mlstack.image"].startswith("mlstack/training:")
    assert tags["mlstack.entry_point"] == "train.py"
    assert tags["sagemaker.instance_type"] == "local"
    assert tags["sagemaker.channels"] == "test,train"
    assert tags["mlflow.source.type"] == "JOB"
    assert tags["mlflow.source.name"] == job_name
    assert "mlflow.parentRunId" not in tags
    # Logged by the MLflow 2.x client the script's requirements.txt installed: a 2.x client
    # logs the model as the run's `model` artifact (no MLflow 3 logged model) ...
    [history] = json.loads(tags["mlflow.log-model.history"])
    assert history["artifact_path"] == "model"
    # ... and /opt/ml/model holds the same model (model.tar.gz of a SageMaker job), saved
    # by that client.
    saved = (saved_model / "MLmodel").read_text()
    assert f"mlflow_version: {MLFLOW_2}" in saved
    assert (tmp_path / job_name / "output" / "success").is_file()
    # The image's plugin recorded the monitoring baseline of the model the script logged,
    # through that 2.x client: the train channel, its statistics and predictions.
    assert f"monitoring baseline recorded on run {run.info.run_id}" in log
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")} == {
        "monitoring/baseline.json",
        "monitoring/reference.csv",
    }
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["train"]

    # The logged model, served by the inference image, answers the reference's payload with
    # the prediction the model itself makes of it.
    test = pd.read_csv(channels / "test" / "test.csv")
    payload = test[FEATURES.split()].iloc[[0]].to_json(orient="split")
    point_mlflow_at(monkeypatch, tracking_server.uri_from_host)
    logged_model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    expected = logged_model.predict(pd.DataFrame(**json.loads(payload))).tolist()
    env = {
        "MODEL_URI": f"runs:/{run.info.run_id}/model",
        "MLFLOW_TRACKING_URI": tracking_server.uri_in_network,
    }
    with serving(inference_image, docker_network, env) as url:
        response = requests.post(
            f"{url}/invocations",
            data=payload,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected


def test_script_runs_nest_under_the_local_tuning_run(
    loop: Callable[..., None], client: MlflowClient
) -> None:
    experiment = f"script-hpo-{uuid.uuid4().hex[:6]}"
    loop(experiment, "hpo", "--jobs", "2", "--parallel", "2")
    runs = runs_in(client, experiment)
    [parent] = [r for r in runs if r.data.tags.get("mlstack.kind") == "tuning"]
    children = [r for r in runs if r.info.run_id != parent.info.run_id]
    assert len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert {r.info.status for r in children} == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    best = parent.data.tags["mlstack.best_run_id"]
    assert best in {r.info.run_id for r in children}
    [version] = client.search_model_versions(f"name = '{experiment}-model'")
    assert version.run_id == best


# --- failures ---------------------------------------------------------------------------

RAISES = """\
import mlflow
mlflow.start_run()  # bare: no `with`, as scripts often do
mlflow.log_param("stage", "before the error")
raise ValueError("the data has no rows for 2024: check --train-file")
"""
SLEEPS = """\
import time
import mlflow
mlflow.start_run()
print("ready", flush=True)
time.sleep(300)
"""


def failing_job(
    source: dict[str, str], entry_point: str, job_dir: Path, data_dir: Path, hps: dict[str, str]
) -> local_jobs.Script:
    """A job dir for a script made of `source` files."""
    code = job_dir.parent / f"{job_dir.name}-src"
    code.mkdir(parents=True)
    for name, text in source.items():
        (code / name).write_text(text)
    script = local_jobs.Script(code, entry_point)
    local_jobs.write_job_dir(
        job_dir, data_dir, {**hps, **script.hyperparameters(job_dir.name)}, script
    )
    return script


@pytest.mark.parametrize(
    ("case", "source", "entry_point", "reason", "status"),
    [
        (
            "raises",
            {"train.py": RAISES},
            "train.py",
            "ValueError: the data has no rows for 2024: check --train-file",
            "FAILED",
        ),
        (
            "requirements",
            {"train.py": RAISES, "requirements.txt": "mlstack-no-such-package==0.0.1\n"},
            "train.py",
            "No matching distribution found for mlstack-no-such-package==0.0.1",
            None,
        ),
        (
            "missing",
            {"train.py": RAISES},
            "trian.py",
            "entry point 'trian.py' is not in the source directory",
            None,
        ),
    ],
)
def test_failing_script_fails_the_job_with_its_reason(
    case: str,
    source: dict[str, str],
    entry_point: str,
    reason: str,
    status: str | None,
    training_image: str,
    tracking_server: TrackingServer,
    docker_network: Network,
    client: MlflowClient,
    channels: Path,
    tmp_path: Path,
) -> None:
    experiment = f"script-fails-{case}-{uuid.uuid4().hex[:6]}"
    name = f"fails-{case}-{uuid.uuid4().hex[:6]}"
    job_dir = tmp_path / name
    hps = job_hyperparameters(tracking_server, experiment)
    failing_job(source, entry_point, job_dir, channels, hps)
    result = local_jobs.run_job(
        docker.from_env(), training_image, docker_network.name, job_dir, name, hps
    )
    assert result.exit_code != 0
    assert result.failure and reason in result.failure, result.failure
    assert len(result.failure) <= 1024
    runs = runs_in(client, experiment)
    assert "RUNNING" not in {r.info.status for r in runs}
    if status:
        [run] = runs
        assert run.info.status == status
        assert reason in run.data.tags["mlstack.failure_reason"]


def test_sigterm_stops_the_script_and_ends_its_run_killed(
    training_image: str,
    tracking_server: TrackingServer,
    docker_network: Network,
    client: MlflowClient,
    channels: Path,
    tmp_path: Path,
) -> None:
    experiment = f"script-sigterm-{uuid.uuid4().hex[:6]}"
    job_dir = tmp_path / "sigterm"
    failing_job(
        {"train.py": SLEEPS},
        "train.py",
        job_dir,
        channels,
        job_hyperparameters(tracking_server, experiment),
    )
    opt_ml = OptML(job_dir)
    with training_container(training_image, opt_ml, network=docker_network.name) as container:
        wait_until(
            lambda: b"ready" in container.logs(), timeout=90, message=lambda: logs_of(container)
        )
        started = time.monotonic()
        container.stop(timeout=30)  # SIGTERM, SIGKILL after 30 s
        stopped_in = time.monotonic() - started
        status = container.wait(timeout=10)["StatusCode"]
    assert status == 143  # 128 + SIGTERM
    assert stopped_in < 20, "SIGTERM did not reach the script: the job waited for SIGKILL"
    assert "stopped by SIGTERM" in opt_ml.failure_file.read_text()
    [run] = runs_in(client, experiment)
    assert run.info.status == "KILLED"
