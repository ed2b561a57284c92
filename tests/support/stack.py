"""Start the backing services and the tracking server as real containers."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import boto3
import pytest
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.wait_strategies import HttpWaitStrategy

from support.images import ROOT, image_names
from support.waiting import wait_until

MYSQL_ALIAS = "mysql"
MINIO_ALIAS = "minio"
TRACKING_ALIAS = "tracking-server"
AUTH_TRACKING_ALIAS = "tracking-server-auth"  # the session's server with access control on
BUCKET = "mlflow"
AUTH_DB_INIT_SCRIPT = ROOT / "compose" / "mysql-init" / "10-mlflow-auth-db.sh"
# What docs/operations.md tells users to set on their MySQL (compose/compose.yaml sets it too): with
# binary logging on, MLflow's migrations need it for their trigger. Nothing else: the server
# keeps the image's defaults (binary logging on, a case-insensitive default collation).
TRUST_FUNCTION_CREATORS = "--log-bin-trust-function-creators=1"
# Where MLflow keeps its global tracking URI (mlflow.set_tracking_uri writes it).
GLOBAL_TRACKING_URI = "mlflow.tracking._tracking_service.utils._tracking_uri"


@dataclass
class MySQL:
    """A running MySQL-compatible server on a test network."""

    container: DockerContainer
    root_password: str
    user: str = "mlflow"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    database: str = "mlflow"
    auth_database: str = "mlflow_auth"
    host: str = MYSQL_ALIAS
    port: int = 3306

    def execute_as_root(self, sql: str) -> str:
        """Run SQL as root inside the container; return its output, raise on failure."""
        code, output = self.container.exec(
            ["mysql", "-uroot", f"-p{self.root_password}", "--batch", "-e", sql]
        )
        if code != 0:
            raise RuntimeError(f"SQL failed ({code}): {output.decode(errors='replace')}")
        return output.decode()

    def create_database(self, name: str) -> None:
        """A fresh, empty database that the tracking server's user may use."""
        self.execute_as_root(
            f"CREATE DATABASE `{name}`; GRANT ALL ON `{name}`.* TO '{self.user}'@'%';"
        )


@dataclass
class MinIO:
    """A running MinIO server on a test network, with the artifact bucket made."""

    container: DockerContainer
    access_key: str
    secret_key: str
    bucket: str = BUCKET

    @property
    def endpoint_in_network(self) -> str:
        return f"http://{MINIO_ALIAS}:9000"

    @property
    def endpoint_from_host(self) -> str:
        host = self.container.get_container_host_ip()
        return f"http://{host}:{self.container.get_exposed_port(9000)}"

    def s3(self):
        """A boto3 S3 client that talks to this MinIO from the test process."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_from_host,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )


@dataclass
class TrackingServer:
    """A running tracking-server container."""

    container: DockerContainer

    @property
    def uri_from_host(self) -> str:
        host = self.container.get_container_host_ip()
        return f"http://{host}:{self.container.get_exposed_port(5000)}"

    @property
    def uri_in_network(self) -> str:
        return f"http://{TRACKING_ALIAS}:5000"


@dataclass
class AuthServer(TrackingServer):
    """A running tracking server with access control on."""

    admin: tuple[str, str] = ("admin", "")
    auth_database: str = ""  # where MLflow keeps its users and permissions
    secrets: dict[str, str] = field(default_factory=dict)  # name -> value, for leak scans
    startup_command_lines: frozenset[str] = frozenset()  # every `ps` line seen at start-up
    alias: str = AUTH_TRACKING_ALIAS

    @property
    def uri_in_network(self) -> str:
        return f"http://{self.alias}:5000"


def point_mlflow_at(monkeypatch: pytest.MonkeyPatch, uri: str | None) -> None:
    """Set MLflow's global tracking URI for one test or fixture only: monkeypatch puts the
    old value back afterwards, even if the test calls mlflow.set_tracking_uri itself, so no
    test leaves its server behind for the next one."""
    monkeypatch.setattr(GLOBAL_TRACKING_URI, uri)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI: recorded here, restored too.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri or "")
    if uri is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI")


def wait_for_mysql(container: DockerContainer, root_password: str, timeout: float = 120) -> None:
    """Wait until the server answers on TCP (the first-start temporary server does not)."""
    ping = ["mysqladmin", "ping", "-h127.0.0.1", "-uroot", f"-p{root_password}", "--silent"]
    wait_until(
        lambda: container.exec(ping)[0] == 0,
        timeout=timeout,
        every=1,
        message=lambda: f"MySQL did not answer: {container.get_logs()}",
    )


@contextmanager
def run_mysql(
    network: Network, flags: tuple[str, ...] = (TRUST_FUNCTION_CREATORS,), alias: str = MYSQL_ALIAS
) -> Iterator[MySQL]:
    """A MySQL-compatible server with the image's defaults but for `flags`.

    Initialised the way the compose stack does it (MYSQL_DATABASE, MYSQL_USER, the auth
    database), but not given compose's collation: every test meets a case-insensitive server
    default, as users of a plain mysql:8.4 or RDS do.
    """
    root_password = secrets.token_urlsafe(16)
    mysql = MySQL(
        container=DockerContainer(image_names()["MYSQL_IMAGE"]),
        root_password=root_password,
        host=alias,
    )
    if flags:
        mysql.container.with_command(list(flags))
    mysql.container.with_network(network).with_network_aliases(alias).with_envs(
        MYSQL_ROOT_PASSWORD=root_password,
        MYSQL_DATABASE=mysql.database,
        MYSQL_USER=mysql.user,
        MYSQL_PASSWORD=mysql.password,
        MLFLOW_AUTH_DB_NAME=mysql.auth_database,
    ).with_volume_mapping(
        str(AUTH_DB_INIT_SCRIPT), "/docker-entrypoint-initdb.d/10-mlflow-auth-db.sh", "ro"
    )
    with mysql.container:
        wait_for_mysql(mysql.container, root_password)
        yield mysql


@contextmanager
def run_minio(network: Network) -> Iterator[MinIO]:
    """A MinIO server with the artifact bucket created."""
    minio = MinIO(
        container=DockerContainer(image_names()["MINIO_IMAGE"]),
        access_key="mlstack-test",
        secret_key=secrets.token_urlsafe(16),
    )
    minio.container.with_network(network).with_network_aliases(MINIO_ALIAS).with_envs(
        MINIO_ROOT_USER=minio.access_key, MINIO_ROOT_PASSWORD=minio.secret_key
    ).with_command("server /data").with_exposed_ports(9000).waiting_for(
        HttpWaitStrategy(9000, "/minio/health/live").with_startup_timeout(60)
    )
    with minio.container:
        minio.s3().create_bucket(Bucket=minio.bucket)
        yield minio


def tracking_server_env(mysql: MySQL, minio: MinIO, **overrides: str) -> dict[str, str]:
    """The environment a tracking-server container gets in the local stack."""
    env = {
        "DB_HOST": mysql.host,
        "DB_PORT": str(mysql.port),
        "DB_NAME": mysql.database,
        "DB_USER": mysql.user,
        "DB_PASSWORD": mysql.password,
        "ARTIFACTS_DESTINATION": f"s3://{minio.bucket}/artifacts",
        "MLFLOW_S3_ENDPOINT_URL": minio.endpoint_in_network,
        "AWS_ACCESS_KEY_ID": minio.access_key,
        "AWS_SECRET_ACCESS_KEY": minio.secret_key,
        "MLFLOW_WORKERS": "2",
        "ALLOWED_HOSTS": TRACKING_ALIAS,
        "DB_WAIT_TIMEOUT": "30",
        # As the local stack's compose file sets it: MLflow's own /metrics.
        "MLFLOW_EXPOSE_PROMETHEUS": "/tmp/mlflow-metrics",
    }
    env.update(overrides)
    return env


def new_admin() -> tuple[str, str]:
    """An admin login for a server with access control on (12+ characters, as MLflow wants)."""
    return "admin", secrets.token_urlsafe(18)


def auth_env(
    mysql: MySQL, minio: MinIO, database: str, admin: tuple[str, str], **overrides: str
) -> dict[str, str]:
    """The environment of a tracking server with access control on, as the local stack runs
    it, on two fresh databases of its own (`database`, `database`_auth): its start-up
    migrates them. Nobody but the admin may read anything until granted."""
    auth_database = f"{database}_auth"
    mysql.create_database(database)
    mysql.create_database(auth_database)
    settings = {
        "DB_NAME": database,
        "MLFLOW_AUTH_ENABLED": "true",
        "MLFLOW_AUTH_DB_NAME": auth_database,
        "MLFLOW_AUTH_ADMIN_USERNAME": admin[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24),
        "MLFLOW_AUTH_DEFAULT_PERMISSION": "NO_PERMISSIONS",
    }
    return tracking_server_env(mysql, minio, **{**settings, **overrides})


def tracking_server_container(
    image: str, network: Network, env: dict[str, str], alias: str | None = TRACKING_ALIAS
) -> DockerContainer:
    """A tracking-server container (not started) on the network, ready when /health answers."""
    container = DockerContainer(image)
    container.with_network(network).with_envs(**env).with_exposed_ports(5000).waiting_for(
        HttpWaitStrategy(5000, "/health").with_startup_timeout(120)
    )
    if alias:
        container.with_network_aliases(alias)
    return container
