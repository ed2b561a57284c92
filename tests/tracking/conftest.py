"""A database server configured as users run theirs (binary logging, case-insensitive)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from testcontainers.core.network import Network

from support.legacy import MYSQL_84_FLAGS
from support.stack import MinIO, MySQL, run_minio, run_mysql


@pytest.fixture(scope="session")
def legacy_network() -> Iterator[Network]:
    """A network of its own: its MySQL takes the alias the session's MySQL has."""
    with Network() as network:
        yield network


@pytest.fixture(scope="session")
def legacy_mysql(legacy_network: Network) -> Iterator[MySQL]:
    """Binary logging on, trust for MLflow's trigger, default collation case-insensitive."""
    with run_mysql(legacy_network, flags=MYSQL_84_FLAGS) as server:
        yield server


@pytest.fixture(scope="session")
def legacy_minio(legacy_network: Network) -> Iterator[MinIO]:
    with run_minio(legacy_network) as server:
        yield server
