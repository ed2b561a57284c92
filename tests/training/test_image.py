"""The training image as SageMaker runs it: `docker run IMAGE train` over an /opt/ml tree.

Channels come from `mlstack data`; tracking goes to the tracking-server image on
the session network, which the containers reach as http://tracking-server:5000.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from testcontainers.core.network import Network

from mlstack.training.paths import OptML
from support.containers import logs_of
from support.metrics import assert_metrics_match
from support.stack import TrackingServer, point_mlflow_at
from support.waiting import wait_until

from .helpers import (
    FEATURES,
    METRIC_REGEXES,
    TARGET,
    Exited,
    json_encoded,
    run_training,
    training_container,
)

pytestmark = pytest.mark.docker
N_ESTIMATORS = "10"


@pytest.fixture
def opt_ml(tmp_path: Path, channels: Path) -> Callable[..., OptML]:
    """An /opt/ml tree with the given hyperparameters and the prepared channels."""

    def make(hyperparameters: dict[str, str], with_channels: tuple[str, ...] = ("train", "test")):
        tree = OptML(tmp_path / "opt_ml")
        tree.hyperparameters_file.parent.mkdir(parents=True)
        tree.hyperparameters_file.write_text(json.dumps(hyperparameters))
        for channel in with_channels:
            shutil.copytree(channels / channel, tree.channel(channel))
        tree.model_dir.mkdir()
        (tree.root / "output").mkdir()
        return tree

    return make


@pytest.fixture
def client(tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A client on the host, reading the runs the jobs logged."""
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    point_mlflow_at(monkeypatch, tracking_server.uri_from_host)
    return MlflowClient(tracking_server.uri_from_host)


def reference_hyperparameters(tracking_server: TrackingServer, experiment: str) -> dict[str, str]:
    return {
        "tracking_uri": tracking_server.uri_in_network,
        "experiment_name": experiment,
        "n-estimators": N_ESTIMATORS,
        "min-samples-leaf": "3",
        "features": FEATURES,
        "target": TARGET,
    }


def runs_of(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def metric_values(logs: str) -> dict[str, float]:
    """What SageMaker's metric definitions would read from the log."""
    values = {}
    for name, pattern in METRIC_REGEXES.items():
        matches = [m for line in logs.splitlines() if (m := re.search(pattern, line))]
        assert matches, f"no log line matches {pattern!r}"
        values[name] = float(matches[-1].group(1))
    return values


@pytest.mark.parametrize("encoding", ["plain", "json"])
def test_tracked_training_job(
    encoding: str,
    training_image: str,
    tracking_server: TrackingServer,
    docker_network: Network,
    client: MlflowClient,
    opt_ml: Callable[..., OptML],
) -> None:
    experiment = f"training-image-{encoding}-{uuid.uuid4().hex[:6]}"
    hyperparameters = reference_hyperparameters(tracking_server, experiment)
    if encoding == "json":
        hyperparameters = json_encoded(hyperparameters)
    tree = opt_ml(hyperparameters)
    job_name = f"mlstack-test-{encoding}"
    exited = run_training(
        training_image, tree, {"TRAINING_JOB_NAME": job_name}, network=docker_network.name
    )
    assert exited.status == 0, exited.logs
    assert not tree.failure_file.exists()

    [run] = runs_of(client, experiment)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == job_name
    assert run.data.tags["sagemaker.training_job_name"] == job_name
    assert run.data.params["n-estimators"] == N_ESTIMATORS
    assert run.data.params["min-samples-leaf"] == "3"
    assert run.data.params["features"] == FEATURES
    logged = metric_values(exited.logs)
    assert run.data.metrics == pytest.approx(logged, abs=1e-5)  # what SageMaker reads
    # What they must be: the saved model's errors on the held-out set, worked out here.
    assert_metrics_match(run.data.metrics, tree.model_dir, tree.channel("test") / "test.csv")
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
        "plots/predicted_vs_actual.png"
    }
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")} == {
        "monitoring/baseline.json",
        "monitoring/reference.csv",
    }

    test = pd.read_csv(tree.channel("test") / "test.csv")[FEATURES.split()].head(5)
    [model] = client.search_logged_models([run.info.experiment_id])
    assert model.source_run_id == run.info.run_id
    from_server = mlflow.pyfunc.load_model(f"models:/{model.model_id}")
    from_job = mlflow.pyfunc.load_model(str(tree.model_dir))
    assert from_job.predict(test).tolist() == pytest.approx(from_server.predict(test).tolist())
    assert (tree.output_data_dir / "metrics.json").exists()


def test_trains_without_any_tracking_uri(training_image: str, opt_ml: Callable[..., OptML]) -> None:
    tree = opt_ml({"n-estimators": "5", "target": TARGET})
    exited = run_training(training_image, tree)
    assert exited.status == 0, exited.logs
    assert "training without MLflow" in exited.logs
    metric_values(exited.logs)
    model = mlflow.pyfunc.load_model(str(tree.model_dir))
    assert model.metadata.get_input_schema().input_names() == FEATURES.split()


BAD_INPUTS = {
    "no train channel": (
        {},
        ("test",),
        "no train channel: /opt/ml/input/data/train does not exist",
    ),
    "empty csv": (
        {},
        ("empty",),
        "/opt/ml/input/data/train/train.csv is empty",
    ),
    "unknown feature": (
        {"features": "age sex shoe-size"},
        ("train", "test"),
        "unknown feature shoe-size: not in the train data",
    ),
    "missing target": (
        {"target": "price", "features": "age sex"},
        ("train", "test"),
        "target column 'price' is not in the train data",
    ),
    "non-numeric n-estimators": (
        {"n-estimators": "lots"},
        ("train", "test"),
        "hyperparameter n-estimators must be a whole number of at least 1, got 'lots'",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_fails_clearly(
    case: str,
    training_image: str,
    tracking_server: TrackingServer,
    docker_network: Network,
    client: MlflowClient,
    opt_ml: Callable[..., OptML],
) -> None:
    overrides, with_channels, message = BAD_INPUTS[case]
    experiment = f"training-image-bad-{uuid.uuid4().hex[:6]}"
    hyperparameters = {**reference_hyperparameters(tracking_server, experiment), **overrides}
    tree = opt_ml(hyperparameters, tuple(c for c in with_channels if c != "empty"))
    if "empty" in with_channels:
        tree.channel("train").mkdir(parents=True)
        (tree.channel("train") / "train.csv").write_text("")
    exited = run_training(training_image, tree, network=docker_network.name)

    assert exited.status != 0
    reason = tree.failure_file.read_text()
    assert message in reason
    assert len(reason.splitlines()) == 1
    assert "Traceback" not in exited.logs
    assert not any(tree.model_dir.iterdir())
    runs = runs_of(client, experiment)
    if case == "non-numeric n-estimators":
        assert runs == []  # no run starts with unusable hyperparameters
    else:
        [run] = runs
        assert run.info.status == "FAILED"
        assert message in run.data.tags["mlstack.failure_reason"]


@pytest.fixture
def silent_server(training_image: str, docker_network: Network) -> Iterator[str]:
    """A host on the network that accepts TCP connections on 5000 and never answers."""
    name = f"mlstack-silent-{uuid.uuid4().hex[:8]}"
    script = "import socket, time; s = socket.create_server(('0.0.0.0', 5000)); time.sleep(600)"
    container = docker.from_env().containers.run(
        training_image,
        entrypoint=["python", "-c", script],
        name=name,
        network=docker_network.name,
        detach=True,
    )
    try:
        yield f"http://{name}:5000"
    finally:
        container.remove(force=True)


def test_tracking_server_that_does_not_answer_fails_in_bounded_time(
    training_image: str,
    docker_network: Network,
    silent_server: str,
    opt_ml: Callable[..., OptML],
) -> None:
    tree = opt_ml({"tracking_uri": silent_server, "n-estimators": "5", "target": TARGET})
    exited: Exited = run_training(training_image, tree, network=docker_network.name, timeout=90)
    assert exited.status == 1, exited.logs
    assert exited.seconds < 40  # the image's default TRACKING_WAIT_TIMEOUT is 20 s
    reason = tree.failure_file.read_text()
    assert f"the MLflow tracking server at {silent_server} did not answer within 20 s" in reason
    assert "check the tracking_uri hyperparameter or MLFLOW_TRACKING_URI" in reason


def test_sigterm_stops_training_promptly(
    training_image: str,
    tracking_server: TrackingServer,
    docker_network: Network,
    client: MlflowClient,
    opt_ml: Callable[..., OptML],
) -> None:
    experiment = f"training-image-sigterm-{uuid.uuid4().hex[:6]}"
    hyperparameters = reference_hyperparameters(tracking_server, experiment)
    tree = opt_ml({**hyperparameters, "n-estimators": "200000"})  # hours of training
    with training_container(training_image, tree, network=docker_network.name) as container:
        wait_until(
            lambda: b"training RandomForestRegressor" in container.logs(),
            timeout=60,
            message=lambda: logs_of(container),
        )
        started = time.monotonic()
        container.stop(timeout=60)  # SIGTERM; SIGKILL only after 60 s
        stopped_in = time.monotonic() - started
        container.reload()
        status = container.attrs["State"]["ExitCode"]
        logs = container.logs().decode()
    assert stopped_in < 15, logs
    assert status == 143, logs
    assert tree.failure_file.read_text().startswith("stopped by SIGTERM")
    [run] = runs_of(client, experiment)
    assert run.info.status == "KILLED"
