"""The tracking-server image against a real MySQL-compatible server and MinIO.

The test process plays a data scientist's laptop: it knows only the tracking
URI, holds no S3 credentials and cannot resolve container host names.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from mlflow.server import get_app_client
from sklearn.linear_model import LinearRegression
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from support.containers import run_to_exit
from support.stack import (
    AuthServer,
    MinIO,
    MySQL,
    TrackingServer,
    auth_env,
    new_admin,
    point_mlflow_at,
    tracking_server_container,
    tracking_server_env,
)
from support.waiting import wait_for_http

pytestmark = pytest.mark.docker
MODEL_NAME = "tracking-server-test-model"


@pytest.fixture
def client_env(monkeypatch: pytest.MonkeyPatch, tracking_server: TrackingServer) -> str:
    """Point the MLflow client at the server, with no S3 credentials of any kind."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    point_mlflow_at(monkeypatch, tracking_server.uri_from_host)
    return tracking_server.uri_from_host


def log_and_register(tmp_path: Path) -> tuple[str, np.ndarray]:
    """Log params, metrics, a file and a model; register it; alias it champion."""
    features = np.arange(20, dtype=float).reshape(10, 2)
    model = LinearRegression().fit(features, features.sum(axis=1))
    notes = tmp_path / "notes.txt"
    notes.write_text("artifact through the proxy\n")
    mlflow.set_experiment("tracking-server-test")
    with mlflow.start_run() as run:
        mlflow.log_params({"alpha": 0.5, "kind": "linear"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_artifact(str(notes), artifact_path="docs")
        mlflow.sklearn.log_model(
            model, name="model", registered_model_name=MODEL_NAME, input_example=features[:2]
        )
    client = MlflowClient()
    version = client.search_model_versions(f"name='{MODEL_NAME}'")[0].version
    client.set_registered_model_alias(MODEL_NAME, "champion", version)
    return run.info.run_id, features


def test_health_and_ui(tracking_server: TrackingServer) -> None:
    assert requests.get(f"{tracking_server.uri_from_host}/health", timeout=5).text == "OK"
    page = requests.get(tracking_server.uri_from_host, timeout=10)
    assert page.status_code == 200
    assert "<html" in page.text.lower()


def test_whole_tracking_loop_through_the_uri_only(client_env: str, tmp_path: Path) -> None:
    run_id, features = log_and_register(tmp_path)

    run = MlflowClient().get_run(run_id)
    assert run.data.params == {"alpha": "0.5", "kind": "linear"}
    assert run.data.metrics["loss"] == pytest.approx(1 / 3)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")

    loaded = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    np.testing.assert_allclose(loaded.predict(features), features.sum(axis=1))

    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="docs/notes.txt", dst_path=str(tmp_path / "down")
    )
    assert Path(downloaded).read_text() == "artifact through the proxy\n"


def test_presigned_transfers_are_not_advertised(tracking_server: TrackingServer) -> None:
    info = requests.get(f"{tracking_server.uri_from_host}/api/3.0/mlflow/server-info", timeout=5)
    assert info.status_code == 200
    assert info.json()["multipart_downloads_enabled"] is False
    assert info.json()["multipart_uploads_enabled"] is False


def requests_counted(url: str, **login: object) -> float:
    """The sum of MLflow's mlflow_http_request_total samples on /metrics."""
    text = requests.get(f"{url}/metrics", timeout=10, **login).text
    found = re.findall(r"^mlflow_http_request_total\{[^}]*\} ([0-9.e+]+)$", text, re.MULTILINE)
    return sum(map(float, found))


def test_mlflows_prometheus_metrics_add_up_across_workers(tracking_server: TrackingServer):
    url = tracking_server.uri_from_host
    before = requests_counted(url)
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    for _ in range(20):  # a connection each: both workers answer some
        assert requests.get(search, timeout=10).status_code == 200
    assert requests_counted(url) - before >= 20


def test_metrics_need_a_login_when_access_control_is_on(auth_server: AuthServer) -> None:
    url = auth_server.uri_from_host
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 401
    assert requests_counted(url, auth=auth_server.admin) > 0


# --- access control -------------------------------------------------------------------------

ADMIN = new_admin()


@dataclass(frozen=True)
class Replica:
    container: DockerContainer

    @property
    def url(self) -> str:
        """Asked anew each time: a restart gives the container another host port."""
        host = self.container.get_container_host_ip()
        return f"http://{host}:{self.container.get_exposed_port(5000)}"


@pytest.fixture(scope="module")
def auth_replicas(
    tracking_server_image: str, docker_network: Network, mysql: MySQL, minio: MinIO
) -> Iterator[list[Replica]]:
    """Two replicas with basic-auth on (two workers each), started at once on a fresh database."""
    env = auth_env(mysql, minio, "mlflow_replicas", ADMIN)
    replicas = [
        tracking_server_container(tracking_server_image, docker_network, env, alias=None)
        for _ in range(2)
    ]
    # Start both at once, so their migrations and auth bootstraps overlap.
    with ThreadPoolExecutor(max_workers=2) as pool:
        starts = [pool.submit(replica.start) for replica in replicas]
    try:
        for start in starts:
            start.result()
        yield [Replica(replica) for replica in replicas]
    finally:
        for replica in replicas:
            replica.stop()


@pytest.fixture
def auth_servers(auth_replicas: list[Replica]) -> list[str]:
    """The replicas' URLs as they are now."""
    return [replica.url for replica in auth_replicas]


def test_replicas_started_together_both_serve(auth_servers: list[str]) -> None:
    for url in auth_servers:
        response = requests.get(
            f"{url}/api/2.0/mlflow/experiments/search?max_results=1", auth=ADMIN, timeout=10
        )
        assert response.status_code == 200, response.text


def test_everything_survives_a_restart(
    auth_replicas: list[Replica], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs, artifacts, registered versions and the alias, through replica B restarted (a
    server of this module's own: the session's shared one keeps its host port)."""
    replica = auth_replicas[1]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    point_mlflow_at(monkeypatch, replica.url)
    run_id, _ = log_and_register(tmp_path)
    client = MlflowClient()
    versions_before = {v.version for v in client.search_model_versions(f"name='{MODEL_NAME}'")}

    replica.container.get_wrapped_container().restart(timeout=30)
    wait_for_http(
        f"{replica.url}/health",
        timeout=90,
        every=1,
        message="the server did not come back after a restart",
    )
    client = MlflowClient(tracking_uri=replica.url)
    point_mlflow_at(monkeypatch, replica.url)

    run = client.get_run(run_id)
    assert run.data.params["kind"] == "linear"
    assert {a.path for a in client.list_artifacts(run_id, "docs")} == {"docs/notes.txt"}
    assert {v.version for v in client.search_model_versions(f"name='{MODEL_NAME}'")} == (
        versions_before
    )
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version in versions_before


# --- logins: verified once per worker, never against a stale hash ---------------------------

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
CONNECTIONS = 3  # per replica, each kept open: later requests on it reach the same worker


def statuses(sessions: list[requests.Session], url: str, login: tuple[str, str]) -> list[int]:
    """One request per kept-open connection, logged in as `login`."""
    return [s.get(url + SEARCH, auth=login, timeout=30).status_code for s in sessions]


def admin_of(url: str, monkeypatch: pytest.MonkeyPatch):
    """MLflow's user-management client, logged in as the admin, talking to `url`."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    return get_app_client("basic-auth", tracking_uri=url)


def test_a_password_changed_or_a_user_deleted_elsewhere_is_refused_on_the_next_request(
    auth_servers: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of replica A's connections logs in once (its worker verifies and remembers the
    password); the password is then changed, or the user deleted, through replica B (other
    processes, the same auth database); the very next request on each of A's connections
    (the same worker, the entry in its memory) is refused with the old password."""
    a, b = auth_servers
    admin_b = admin_of(b, monkeypatch)
    name = f"rotating-{secrets.token_hex(3)}"
    first, second, third = (secrets.token_urlsafe(15) for _ in range(3))
    admin_b.create_user(name, first)
    with ExitStack() as stack:
        sessions = [stack.enter_context(requests.Session()) for _ in range(CONNECTIONS)]
        assert statuses(sessions, a, (name, first)) == [200] * CONNECTIONS
        # The user changes its own password as the UI's dialog does (its ajax-api route).
        changed = requests.patch(
            f"{b}/ajax-api/2.0/mlflow/users/update-password",
            json={"username": name, "password": second, "current_password": first},
            auth=(name, first),
            timeout=30,
        )
        assert changed.status_code == 200, changed.text
        assert statuses(sessions, a, (name, first)) == [401] * CONNECTIONS
        assert statuses(sessions, a, (name, second)) == [200] * CONNECTIONS
        # The admin sets it through MLflow's REST API (the Python client's update_user_password).
        admin_b.update_user_password(name, third)
        assert statuses(sessions, a, (name, second)) == [401] * CONNECTIONS
        assert statuses(sessions, a, (name, third)) == [200] * CONNECTIONS
        admin_b.delete_user(name)
        assert statuses(sessions, a, (name, third)) == [401] * CONNECTIONS


def test_reset_admin_password_is_obeyed_by_every_replica_at_once(
    auth_replicas: list[Replica],
) -> None:
    """`python -m mlstack.tracking.auth reset-admin-password`, run in replica B with another
    MLFLOW_AUTH_ADMIN_PASSWORD: the admin's remembered old password is refused by A's
    workers on the next request; run again with the container's own, it is restored."""
    a, b = auth_replicas
    reset = ["python", "-m", "mlstack.tracking.auth", "reset-admin-password"]
    new = ("admin", secrets.token_urlsafe(18))
    with ExitStack() as stack:
        sessions = [stack.enter_context(requests.Session()) for _ in range(CONNECTIONS)]
        assert statuses(sessions, a.url, ADMIN) == [200] * CONNECTIONS
        inner = b.container.get_wrapped_container()
        try:
            code, output = inner.exec_run(reset, environment={"MLFLOW_AUTH_ADMIN_PASSWORD": new[1]})
            assert code == 0, output.decode(errors="replace")
            assert statuses(sessions, a.url, ADMIN) == [401] * CONNECTIONS
            assert statuses(sessions, a.url, new) == [200] * CONNECTIONS
        finally:
            code, output = inner.exec_run(reset)
            assert code == 0, output.decode(errors="replace")
        assert statuses(sessions, a.url, ADMIN) == [200] * CONNECTIONS


def test_a_wrong_password_is_refused_every_time_and_answered_later_each_time(
    auth_servers: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On one connection (one worker): four wrong passwords, each refused, each answer no
    sooner than its delay (0.25 s more per refusal in a row; a floor, not a timing); then
    the right password is let in: nobody is locked out."""
    a = auth_servers[0]
    name = f"guessed-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(15)
    admin_of(a, monkeypatch).create_user(name, password)
    with requests.Session() as session:
        for attempt in range(1, 5):
            answer = session.get(a + SEARCH, auth=(name, f"guess-{attempt}"), timeout=30)
            assert answer.status_code == 401
            assert answer.elapsed.total_seconds() >= 0.25 * attempt
        assert session.get(a + SEARCH, auth=(name, password), timeout=30).status_code == 200


# --- bad configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DB_PASSWORD": "wrong-password"}, "refused user 'mlflow': check DB_USER / DB_PASSWORD"),
        ({"DB_PORT": "3399", "DB_WAIT_TIMEOUT": "5"}, "database at mysql:3399 did not answer"),
        ({"DB_HOST": "no-such-host", "DB_WAIT_TIMEOUT": "5"}, "no-such-host:3306 did not answer"),
        (
            {"ARTIFACTS_DESTINATION": "s3://no-such-bucket"},
            "bucket 'no-such-bucket' does not exist",
        ),
        ({"ARTIFACTS_DESTINATION": ""}, "ARTIFACTS_DESTINATION is not set"),
    ],
    ids=[
        "wrong-password",
        "db-unreachable",
        "db-unknown-host",
        "missing-bucket",
        "missing-variable",
    ],
)
def test_bad_configuration_exits_with_one_clear_line(
    tracking_server_image: str,
    docker_network: Network,
    mysql: MySQL,
    minio: MinIO,
    change: dict[str, str],
    message: str,
) -> None:
    env = tracking_server_env(mysql, minio, **change)
    # Killed after the timeout (status -1): a server that waits on instead of exiting fails.
    exited = run_to_exit(tracking_server_image, network=docker_network, env=env, timeout=90)
    assert exited.status == 1, exited.logs
    errors = [line for line in exited.logs.splitlines() if "mlstack-tracking: error:" in line]
    assert len(errors) == 1, exited.logs
    assert message in errors[0]
    assert mysql.password not in exited.logs and minio.secret_key not in exited.logs


@pytest.mark.parametrize(
    ("host", "status"),
    [("tracking-server:5000", 200), ("10.1.2.3:5000", 200), ("evil.example", 403)],
)
def test_host_header_allow_list(tracking_server: TrackingServer, host: str, status: int) -> None:
    response = requests.get(
        f"{tracking_server.uri_from_host}/api/2.0/mlflow/experiments/search?max_results=1",
        headers={"Host": host},
        timeout=10,
    )
    assert response.status_code == status
