"""The tracking server against what real MySQL 8.4 and RDS do by default.

Binary logging on without trust for function creators (MLflow's migrations create a
trigger), a case-insensitive default collation, and a database left half-migrated by an
earlier failure: each is met before any migration runs, with one line saying what to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from mlflow import MlflowClient
from testcontainers.core.network import Network

from support.containers import run_to_exit
from support.stack import (
    MinIO,
    MySQL,
    TrackingServer,
    run_mysql,
    tracking_server_container,
    tracking_server_env,
)

pytestmark = pytest.mark.docker
# MLflow 3.17.2's migration that creates the trigger, and the revision before it.
TRIGGER_REVISION = "1bd49d398cd23"
BEFORE_TRIGGER = "bf29a5ff90ea"
SECRETS_TABLES = {
    "secrets",
    "endpoints",
    "model_definitions",
    "endpoint_model_mappings",
    "endpoint_bindings",
    "endpoint_tags",
}


def rows(mysql: MySQL, sql: str) -> list[list[str]]:
    """The rows of a query run as root, without the header line."""
    lines = mysql.execute_as_root(sql).splitlines()[1:]
    return [line.split("\t") for line in lines]


def tables_of(mysql: MySQL, database: str) -> set[str]:
    return {row[0] for row in rows(mysql, f"SHOW TABLES FROM `{database}`")}


def table_collations(mysql: MySQL, database: str) -> dict[str, str]:
    header, *lines = mysql.execute_as_root(f"SHOW TABLE STATUS FROM `{database}`").splitlines()
    name, collation = header.split("\t").index("Name"), header.split("\t").index("Collation")
    return {line.split("\t")[name]: line.split("\t")[collation] for line in lines}


def error_lines(logs: str) -> list[str]:
    return [line for line in logs.splitlines() if "mlstack-tracking: error:" in line]


@pytest.fixture(scope="module")
def untrusted_server(docker_network: Network) -> Iterator[MySQL]:
    """The stand-in exactly as `docker run mysql:8.4` behaves: binary logging on, no trust."""
    with run_mysql(docker_network, flags=(), alias="mysql-untrusted") as server:
        yield server


@pytest.fixture
def untrusted_mysql(untrusted_server: MySQL) -> MySQL:
    """The module's server without trust for function creators, whichever test ran before:
    the documented recovery sets it globally (SET GLOBAL), on the server all tests share."""
    untrusted_server.execute_as_root("SET GLOBAL log_bin_trust_function_creators = 0")
    return untrusted_server


def test_binary_logging_without_trust_refuses_before_migrating(
    tracking_server_image: str, docker_network: Network, untrusted_mysql: MySQL, minio: MinIO
) -> None:
    assert rows(untrusted_mysql, "SELECT @@log_bin, @@log_bin_trust_function_creators") == [
        ["1", "0"]
    ]
    env = tracking_server_env(untrusted_mysql, minio)
    exited = run_to_exit(tracking_server_image, network=docker_network, env=env)

    assert exited.status == 1, exited.logs
    [line] = error_lines(exited.logs)
    assert "log_bin_trust_function_creators" in line
    assert "--log-bin-trust-function-creators=1" in line and "parameter group" in line
    # Refused before the first migration: no table at all, nothing half-done.
    assert tables_of(untrusted_mysql, untrusted_mysql.database) == set()


def test_half_migrated_database_is_recognised_and_recovers_as_documented(
    tracking_server_image: str, docker_network: Network, untrusted_mysql: MySQL, minio: MinIO
) -> None:
    # Wedge a database as stock `mlflow db upgrade` does here (the reproduction):
    # the trigger fails with 1419 after the secrets tables were created.
    untrusted_mysql.create_database("wedged")
    uri = (
        f"mysql+pymysql://{untrusted_mysql.user}:{untrusted_mysql.password}"
        f"@{untrusted_mysql.host}:3306/wedged"
    )
    output = _run_stock_upgrade(tracking_server_image, docker_network, uri)
    assert "1419" in output, output
    assert rows(untrusted_mysql, "SELECT version_num FROM wedged.alembic_version") == [
        [BEFORE_TRIGGER]
    ]
    assert tables_of(untrusted_mysql, "wedged") >= SECRETS_TABLES

    env = tracking_server_env(untrusted_mysql, minio, DB_NAME="wedged")
    exited = run_to_exit(tracking_server_image, network=docker_network, env=env)
    assert exited.status == 1, exited.logs
    [line] = error_lines(exited.logs)
    assert f"revision {BEFORE_TRIGGER}" in line and "half-migrated" in line
    assert "secrets" in line and "Recovering a failed migration" in line

    # docs/operations.md's steps: drop what the failed migration left, allow the trigger, start.
    untrusted_mysql.execute_as_root(
        "SET FOREIGN_KEY_CHECKS = 0; DROP TABLE "
        + ", ".join(f"wedged.{table}" for table in sorted(SECRETS_TABLES))
        + "; SET GLOBAL log_bin_trust_function_creators = 1;"
    )
    with tracking_server_container(
        tracking_server_image, docker_network, env, alias=None
    ) as container:
        logs = container.get_logs()[1].decode() + container.get_logs()[0].decode()
        assert f"from schema revision {BEFORE_TRIGGER} to " in logs, logs
        client = MlflowClient(
            f"http://{container.get_container_host_ip()}:{container.get_exposed_port(5000)}"
        )
        run = client.create_run(client.create_experiment("after-recovery"))
        client.log_param(run.info.run_id, "recovered", "yes")
    assert "secrets" in tables_of(untrusted_mysql, "wedged")
    assert rows(untrusted_mysql, "SHOW TRIGGERS FROM wedged")[0][0] == (
        "prevent_secrets_aad_mutation"
    )


def _run_stock_upgrade(image: str, network: Network, uri: str) -> str:
    """Run stock `mlflow db upgrade` in the image, bypassing the start-up's checks."""
    entrypoint = ["python", "-m", "mlflow", "db", "upgrade", uri]
    return run_to_exit(image, entrypoint=entrypoint, network=network, timeout=180).logs


@pytest.fixture
def client(tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(tracking_uri=tracking_server.uri_from_host)


def test_keys_differing_only_in_case_are_distinct(mysql: MySQL, client: MlflowClient) -> None:
    run_id = client.create_run(client.create_experiment(f"case-{time.time_ns()}")).info.run_id
    client.log_metric(run_id, "Loss", 1.0)
    client.log_metric(run_id, "loss", 2.0)
    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "LR", "0.2")

    data = client.get_run(run_id).data
    assert data.metrics == {"Loss": 1.0, "loss": 2.0}
    assert data.params == {"lr": "0.1", "LR": "0.2"}
    assert [m.value for m in client.get_metric_history(run_id, "Loss")] == [1.0]
    # The server default stays case-insensitive (as on mysql:8.4); the start-up set the
    # empty database's default before creating the tables.
    [[server_collation]] = rows(mysql, "SELECT @@collation_server")
    assert server_collation.endswith("_ci")
    collations = table_collations(mysql, mysql.database)
    assert {collations[table] for table in ("metrics", "latest_metrics", "params")} == {
        "utf8mb4_bin"
    }
