"""Session fixtures: one Docker network with MySQL, MinIO and a tracking server.

testcontainers' reaper (Ryuk) image cannot be pulled where no registry is
reachable, so it is off and every fixture removes what it started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

from testcontainers.core.network import Network

from support.images import build_project_image
from support.process_watch import command_lines_during
from support.stack import (
    AUTH_TRACKING_ALIAS,
    GLOBAL_TRACKING_URI,
    AuthServer,
    MinIO,
    MySQL,
    TrackingServer,
    auth_env,
    new_admin,
    run_minio,
    run_mysql,
    tracking_server_container,
    tracking_server_env,
)

# MLflow's process-wide choices, as its environment variables and its module globals
# (mlflow.set_tracking_uri, set_registry_uri and set_experiment write these).
MLFLOW_SHELL_CHOICES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
)
MLFLOW_GLOBAL_CHOICES = (
    GLOBAL_TRACKING_URI,
    "mlflow.tracking._model_registry.utils._registry_uri",
    "mlflow.tracking.fluent._active_experiment_id",
)


@pytest.fixture(autouse=True)
def no_mlflow_choices_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with MLflow's defaults: no tracking or registry URI and no active
    experiment, neither the developer's shell's nor one a test before it (or in-process code
    it ran) left behind; each is put back as it was when the test ends. The settings classes
    read the process environment even when a test hands them its own mapping; tests that need
    a server point at it themselves."""
    for name in MLFLOW_SHELL_CHOICES:
        monkeypatch.delenv(name, raising=False)
    for target in MLFLOW_GLOBAL_CHOICES:
        monkeypatch.setattr(target, None)


@pytest.fixture(autouse=True)
def environment_put_back() -> Iterator[None]:
    """The process environment as it was before the test, whatever the test (or in-process
    code it ran: the CLI exports the stack's MLflow login for the libraries it calls) set."""
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)


@pytest.fixture(scope="session")
def docker_network() -> Iterator[Network]:
    """A fresh bridge network for this test session, removed at the end."""
    with Network() as network:
        yield network


@pytest.fixture(scope="session")
def mysql(docker_network: Network) -> Iterator[MySQL]:
    with run_mysql(docker_network) as server:
        yield server


@pytest.fixture(scope="session")
def minio(docker_network: Network) -> Iterator[MinIO]:
    with run_minio(docker_network) as server:
        yield server


@pytest.fixture(scope="session")
def tracking_server_image() -> str:
    return build_project_image("tracking-server")


@pytest.fixture(scope="session")
def training_image() -> str:
    return build_project_image("training")


@pytest.fixture(scope="session")
def inference_image() -> str:
    return build_project_image("inference")


@pytest.fixture(scope="session")
def tracking_server(
    tracking_server_image: str, docker_network: Network, mysql: MySQL, minio: MinIO
) -> Iterator[TrackingServer]:
    """A tracking server without auth, as in the local stack; shared by the suites."""
    env = tracking_server_env(mysql, minio)
    with tracking_server_container(tracking_server_image, docker_network, env) as container:
        yield TrackingServer(container=container)


@pytest.fixture(scope="session")
def auth_server(
    tracking_server_image: str, docker_network: Network, mysql: MySQL, minio: MinIO
) -> Iterator[AuthServer]:
    """A tracking server with access control on, as the local stack runs it, started on a
    fresh database (so its start-up migrates) while every command line is watched."""
    admin = new_admin()
    env = auth_env(mysql, minio, "mlflow_authz", admin, ALLOWED_HOSTS=AUTH_TRACKING_ALIAS)
    container = tracking_server_container(
        tracking_server_image, docker_network, env, alias=AUTH_TRACKING_ALIAS
    )
    with command_lines_during(container) as command_lines:
        container.start()
    try:
        yield AuthServer(
            container=container,
            admin=admin,
            auth_database=env["MLFLOW_AUTH_DB_NAME"],
            secrets={
                "DB_PASSWORD": mysql.password,
                "MYSQL_ROOT_PASSWORD": mysql.root_password,
                "MINIO_SECRET_KEY": minio.secret_key,
                "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
                "MLFLOW_FLASK_SERVER_SECRET_KEY": env["MLFLOW_FLASK_SERVER_SECRET_KEY"],
            },
            startup_command_lines=frozenset(command_lines),
        )
    finally:
        container.stop()
