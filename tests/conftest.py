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
from support.stack import (
    MinIO,
    MySQL,
    TrackingServer,
    run_minio,
    run_mysql,
    tracking_server_container,
    tracking_server_env,
)


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
