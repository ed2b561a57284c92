"""A missing artifact is a 404 RESOURCE_DOES_NOT_EXIST, answered at once, for every client.

MLflow's clients retry a 5xx with back-off: a missing object answered 500 cost minutes,
e.g. `runs:/<run>/model` for a model MLflow 3 logged (its files live under the logged model,
so the client looks in the run's artifacts first, finds nothing, then falls back). The
clients here run with their default retry settings; the server's access log counts their
requests.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LinearRegression
from testcontainers.core.network import Network

from mlstack.tracking.missing_artifacts import is_not_found
from support.containers import run_to_exit, wrapped
from support.legacy import build_mlflow2_image
from support.stack import TrackingServer, point_mlflow_at

ROUTE = "/api/2.0/mlflow-artifacts/artifacts"
ANSWERED_WITHIN = 2.0  # seconds
CLIENT_212 = """\
import json, sys, time
import mlflow
from mlflow.exceptions import MlflowException

mlflow.set_tracking_uri(sys.argv[1])
started = time.monotonic()
try:
    mlflow.artifacts.download_artifacts(artifact_uri="mlflow-artifacts:/" + sys.argv[2])
    error = None
except MlflowException as exc:
    error = exc.message
print("RESULT " + json.dumps({"seconds": time.monotonic() - started, "error": error}))
"""


def missing_path() -> str:
    return f"missing-{uuid.uuid4().hex}/model/MLmodel"


def requests_for(server: TrackingServer, path: str) -> int:
    """How many requests for path the server's access log holds."""
    return wrapped(server.container).logs().decode(errors="replace").count(f"{ROUTE}/{path}")


@pytest.mark.parametrize(
    ("code", "missing"),
    [("404", True), ("NoSuchKey", True), ("NotFound", True), ("403", False), ("500", False)],
)
def test_only_s3s_not_found_codes_count_as_missing(code: str, missing: bool) -> None:
    error = ClientError({"Error": {"Code": code, "Message": "..."}}, "HeadObject")
    assert is_not_found(error) is missing


@pytest.fixture
def client_uri(monkeypatch: pytest.MonkeyPatch, tracking_server: TrackingServer) -> str:
    """MLflow's client pointed at the server, with its default retries (none configured)."""
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    point_mlflow_at(monkeypatch, tracking_server.uri_from_host)
    return tracking_server.uri_from_host


@pytest.mark.docker
def test_missing_artifact_is_404_resource_does_not_exist(client_uri: str) -> None:
    path = missing_path()
    started = time.monotonic()
    response = requests.get(f"{client_uri}{ROUTE}/{path}", timeout=30)
    seconds = time.monotonic() - started
    assert response.status_code == 404, response.text
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert seconds < ANSWERED_WITHIN
    present = requests.get(f"{client_uri}{ROUTE}?path=", timeout=30)
    assert present.status_code == 200  # the store itself answers: a missing file is not a 5xx


@pytest.mark.docker
def test_317_client_gets_the_404_at_once_without_retrying(
    client_uri: str, tracking_server: TrackingServer
) -> None:
    path = missing_path()
    started = time.monotonic()
    with pytest.raises(MlflowException) as raised:
        mlflow.artifacts.download_artifacts(artifact_uri=f"mlflow-artifacts:/{path}")
    seconds = time.monotonic() - started
    print(f"MLflow {mlflow.__version__} client: missing artifact failed in {seconds:.2f} s")
    assert seconds < ANSWERED_WITHIN
    assert "404" in raised.value.message or "RESOURCE_DOES_NOT_EXIST" in raised.value.message
    assert requests_for(tracking_server, path) == 1


@pytest.mark.docker
def test_212_client_gets_the_404_at_once_without_retrying(
    tracking_server: TrackingServer, docker_network: Network
) -> None:
    path = missing_path()
    exited = run_to_exit(
        build_mlflow2_image(),
        ["/opt/mlflow212/bin/python", "-c", CLIENT_212, tracking_server.uri_in_network, path],
        network=docker_network,
        timeout=240,
    )
    assert exited.status == 0, exited.logs
    result = json.loads(exited.logs.split("RESULT ", 1)[1].splitlines()[0])
    print(f"MLflow 2.12.1 client: missing artifact failed in {result['seconds']:.2f} s")
    assert result["error"] and "404" in result["error"], result
    assert result["seconds"] < ANSWERED_WITHIN
    assert requests_for(tracking_server, path) == 1


@pytest.mark.docker
def test_runs_uri_of_an_mlflow3_logged_model_resolves_in_seconds(
    client_uri: str, tmp_path: Path
) -> None:
    """MLflow 3 keeps the model's files under the logged model: `runs:/<run>/model` first
    asks for them under the run (missing: 404), then under the model."""
    features = np.arange(20, dtype=float).reshape(10, 2)
    model = LinearRegression().fit(features, features.sum(axis=1))
    mlflow.set_experiment(f"missing-artifacts-{uuid.uuid4().hex[:6]}")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn"],  # no inference: seconds of a subprocess
        )
    started = time.monotonic()
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model", dst_path=str(tmp_path))
    seconds = time.monotonic() - started
    print(f"runs:/<run>/model of an MLflow 3 logged model resolved in {seconds:.2f} s")
    assert loaded.predict(features) == pytest.approx(model.predict(features))
    assert seconds < 10
