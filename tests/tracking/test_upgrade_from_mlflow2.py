"""From the reference's MLflow 2.6.0 to our 3.17 server, on a database as users have it.

The reference runs MLflow 2.6.0 on RDS MySQL, with clients at 2.12. Here the 2.6.0
server writes its database on a server with binary logging on and a case-insensitive
default collation; our image then starts on it, upgrades it, warns about the
collation, and serves everything back to a 3.17 client; a 2.12.1 client logs to it;
after `python -m mlstack.tracking.collation convert`, names that differ only in
case no longer collide. The tests share one database (a module fixture) and pass in any
order: the conversion, which changes it for good, is one test, from before to after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pytest
from alembic.script import ScriptDirectory
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.db.utils import _get_alembic_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy

from support.containers import Exited, run_to_exit
from support.legacy import (
    CASE_INSENSITIVE,
    MLFLOW2_DIR,
    build_mlflow2_image,
)
from support.stack import (
    MinIO,
    MySQL,
    TrackingServer,
    point_mlflow_at,
    tracking_server_container,
    tracking_server_env,
)

pytestmark = pytest.mark.docker
CONVERT_COMMAND = "python -m mlstack.tracking.collation convert"
COLLATION = ["python", "-m", "mlstack.tracking.collation"]


@dataclass
class Upgrade:
    """The database the 2.6.0 server wrote, and our server on it."""

    network: Network
    mysql: MySQL
    minio: MinIO
    image: str
    written: dict
    revision_before: str
    server: DockerContainer | None = None
    startup_logs: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return tracking_server_env(self.mysql, self.minio)

    def start_server(self) -> TrackingServer:
        """Start our tracking server on the database; keep its start-up log."""
        self.server = tracking_server_container(self.image, self.network, self.env)
        self.server.start()
        stdout, stderr = self.server.get_wrapped_container().logs(stdout=True, stderr=True), b""
        self.startup_logs.append((stdout + stderr).decode(errors="replace"))
        return TrackingServer(container=self.server)

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def convert(self) -> Exited:
        """`python -m mlstack.tracking.collation convert` on the database, as documented."""
        return run_to_exit(
            self.image,
            ["convert"],
            network=self.network,
            env=self.env,
            entrypoint=COLLATION,
            timeout=300,
        )

    def collations(self) -> list[str]:
        """The database's default collation and its tables', each once."""
        database = self.mysql.database
        return self.mysql.execute_as_root(
            "SELECT DISTINCT TABLE_COLLATION FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = '{database}' "
            "UNION SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
            f"WHERE SCHEMA_NAME = '{database}'"
        ).split()[1:]

    def revision(self) -> str:
        return self.mysql.execute_as_root(
            f"SELECT version_num FROM `{self.mysql.database}`.alembic_version"
        ).split()[-1]


def run_26_server(image: str, network: Network, mysql: MySQL, minio: MinIO) -> DockerContainer:
    """The reference's server: MLflow 2.6.0, proxied artifacts in the bucket (2.x default)."""
    uri = f"mysql+pymysql://{mysql.user}:{mysql.password}@{mysql.host}/{mysql.database}"
    container = DockerContainer(image)
    container.with_network(network).with_envs(
        PATH="/opt/mlflow26/bin:/usr/bin:/bin",
        AWS_ACCESS_KEY_ID=minio.access_key,
        AWS_SECRET_ACCESS_KEY=minio.secret_key,
        MLFLOW_S3_ENDPOINT_URL=minio.endpoint_in_network,
    ).with_command(
        [
            "mlflow",
            "server",
            "--backend-store-uri",
            uri,
            "--serve-artifacts",
            "--artifacts-destination",
            f"s3://{minio.bucket}/artifacts",
            "--host",
            "0.0.0.0",
            "--port",
            "5000",
            "--workers",
            "1",
        ]
    ).with_exposed_ports(5000).waiting_for(
        HttpWaitStrategy(5000, "/health").with_startup_timeout(240)
    )
    return container


@pytest.fixture(scope="module")
def upgrade(
    tracking_server_image: str,
    legacy_network: Network,
    legacy_mysql: MySQL,
    legacy_minio: MinIO,
) -> Iterator[Upgrade]:
    """The 2.6.0 server's database, written and left; our server started on it."""
    mysql = legacy_mysql
    # What mysql:8.4 gives MYSQL_DATABASE (utf8mb4_0900_ai_ci), as MariaDB has it.
    mysql.execute_as_root(
        f"ALTER DATABASE `{mysql.database}` CHARACTER SET utf8mb4 COLLATE {CASE_INSENSITIVE}"
    )
    assert mysql.execute_as_root("SELECT @@log_bin").split()[-1] == "1"
    image = build_mlflow2_image()
    script = (MLFLOW2_DIR / "populate_26.py").read_text()
    with run_26_server(image, legacy_network, mysql, legacy_minio) as server:
        code, output = server.exec(
            ["/opt/mlflow26/bin/python", "-c", script, "http://127.0.0.1:5000"]
        )
    text = output.decode(errors="replace")
    assert code == 0, text
    written = json.loads(text.split("WRITTEN ", 1)[1].splitlines()[0])
    state = Upgrade(
        network=legacy_network,
        mysql=mysql,
        minio=legacy_minio,
        image=tracking_server_image,
        written=written,
        revision_before="",
    )
    state.revision_before = state.revision()
    state.start_server()
    try:
        yield state
    finally:
        state.stop_server()


def client_of(upgrade: Upgrade, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """A 3.17 client of the server running now, knowing only its URI (no S3 credentials)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert upgrade.server is not None
    uri = TrackingServer(container=upgrade.server).uri_from_host
    point_mlflow_at(monkeypatch, uri)
    return MlflowClient(tracking_uri=uri)


@pytest.fixture
def client(upgrade: Upgrade, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    return client_of(upgrade, monkeypatch)


def head_revision() -> str:
    return ScriptDirectory.from_config(_get_alembic_config("mysql://")).get_current_head()


def test_01_startup_upgrades_the_26_schema_and_warns_about_collation(upgrade: Upgrade) -> None:
    assert upgrade.revision_before != head_revision()
    assert upgrade.revision() == head_revision()
    logs = upgrade.startup_logs[0]
    warnings = [line for line in logs.splitlines() if "case-insensitive collation" in line]
    assert len(warnings) == 1, logs
    assert CONVERT_COMMAND in warnings[0] and CASE_INSENSITIVE in warnings[0]


def test_02_everything_26_wrote_reads_back_with_317(
    client: MlflowClient, upgrade: Upgrade, tmp_path: Path
) -> None:
    assert_everything_26_wrote_reads_back(client, upgrade.written, tmp_path)


def assert_everything_26_wrote_reads_back(client: MlflowClient, written: dict, tmp: Path) -> None:
    """Experiment, runs (params, tags, metrics and their history, artifacts) and registered
    model with its versions, as the 2.6.0 server wrote them."""
    experiment = client.get_experiment_by_name("legacy-2.6")
    assert experiment.experiment_id == written["experiment_id"]
    found = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in found} == set(written["runs"])
    for run_id, expected in written["runs"].items():
        run = client.get_run(run_id)
        assert run.info.run_name == expected["name"]
        assert run.data.params == expected["params"]
        assert expected["tags"].items() <= run.data.tags.items()
        assert run.data.metrics["accuracy"] == pytest.approx(expected["accuracy"])
        history = sorted(client.get_metric_history(run_id, "loss"), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == list(enumerate(expected["history"]))
        for path, content in expected["artifacts"].items():
            local = client.download_artifacts(run_id, path, str(tmp / run_id))
            assert Path(local).read_bytes() == bytes.fromhex(content)
    model = client.get_registered_model("legacy-model")
    assert model.tags == {"owner": "reference"}
    versions = client.search_model_versions("name='legacy-model'")
    assert {v.version: (v.run_id, v.current_stage) for v in versions} == {
        version: (v["run_id"], v["stage"]) for version, v in written["versions"].items()
    }


def test_03_a_212_client_logs_a_run_that_317_reads(client: MlflowClient, upgrade: Upgrade) -> None:
    image = build_mlflow2_image()
    script = (MLFLOW2_DIR / "client_212.py").read_text()
    logged = run_to_exit(
        image,
        ["/opt/mlflow212/bin/python", "-c", script, "http://tracking-server:5000"],
        network=upgrade.network,
        timeout=240,
    )
    assert logged.status == 0, logged.logs
    result = json.loads(logged.logs.split("LOGGED ", 1)[1].splitlines()[0])
    run = client.get_run(result["run_id"])
    assert run.data.params == {"alpha": "0.5", "client": "2.12.1"}
    history = sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
    assert [m.value for m in history] == pytest.approx([1.0, 0.5, 1 / 3])
    model = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    features = np.arange(20, dtype=float).reshape(10, 2)
    assert model.predict(features) == pytest.approx(result["predictions"])


def test_04_the_collation_conversion_from_before_to_after(
    upgrade: Upgrade, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: names that differ only in case collide, and `convert` refuses while the
    server runs. Stopped, converted, started: both names land, nothing 2.6 wrote is lost,
    and the start-up no longer warns."""
    assert upgrade.collations() != ["utf8mb4_bin"]  # the module's database, unconverted
    client = client_of(upgrade, monkeypatch)
    experiment_id = client.create_experiment("case-distinct")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "Loss", 1.0)
    with pytest.raises(MlflowException):
        client.log_metric(run_id, "loss", 2.0)

    refused = upgrade.convert()
    assert refused.status == 1
    (error,) = [line for line in refused.logs.splitlines() if "error:" in line]
    assert "other sessions are using database mlflow" in error, refused.logs
    assert CASE_INSENSITIVE in upgrade.mysql.execute_as_root(
        "SELECT TABLE_COLLATION FROM information_schema.TABLES "
        f"WHERE TABLE_SCHEMA = '{upgrade.mysql.database}' AND TABLE_NAME = 'latest_metrics'"
    )

    upgrade.stop_server()
    converted = upgrade.convert()
    assert converted.status == 0, converted.logs
    assert "tables now utf8mb4_bin" in converted.logs
    assert upgrade.collations() == ["utf8mb4_bin"]
    upgrade.start_server()
    assert "case-insensitive collation" not in upgrade.startup_logs[-1]

    client = client_of(upgrade, monkeypatch)  # the restarted server has another host port
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "Loss", 1.0)
    client.log_metric(run_id, "loss", 2.0)
    client.log_param(run_id, "lr", "0.1")
    client.log_param(run_id, "LR", "0.2")
    run = client.get_run(run_id)
    assert run.data.metrics == {"Loss": 1.0, "loss": 2.0}
    assert run.data.params == {"lr": "0.1", "LR": "0.2"}
    assert_everything_26_wrote_reads_back(client, upgrade.written, tmp_path)
