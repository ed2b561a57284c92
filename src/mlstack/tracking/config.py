"""Settings of the tracking server: the only module of the image that reads the environment."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mlstack.core.errors import StartupError
from mlstack.core.settings import Settings as BaseSettings
from mlstack.core.settings import env, load

MIN_ADMIN_PASSWORD_LENGTH = 12  # mlflow >= 3.16.1 refuses shorter bootstrap passwords
LOOPBACK = "127.0.0.1,::1"
# Above the Fargate template's load balancer idle timeout (120 s): a target that closes an
# idle connection first makes the load balancer answer 502 to the request it sends on it.
DEFAULT_KEEPALIVE_S = 130
LOG_LEVELS = {"debug", "info", "warning", "error", "critical"}
PERMISSIONS = {"READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"}
NEEDS_DB_PARTS = "set it or MLFLOW_BACKEND_STORE_URI"


@dataclass(frozen=True)
class Bounds:
    """How long the server waits on its database and object store (docs/operations.md,
    "Bounded waits")."""

    db_connect_timeout: int = 5
    db_read_timeout: int = 10  # also the write timeout
    s3_connect_timeout: int = 5
    s3_read_timeout: int = 10
    s3_max_attempts: int = 2  # botocore counts the first try


@dataclass(frozen=True)
class AuthSettings:
    """MLflow's basic-auth app: its own database on the same server, admin from the env."""

    database_uri: str
    admin_username: str
    admin_password: str
    secret_key: str
    default_permission: str


def _require(value: str | SecretStr | None, name: str, hint: str) -> str:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not text:
        raise StartupError(f"{name} is not set: {hint}")
    return text


S = TypeVar("S", bound="StoreSettings")


class StoreSettings(BaseSettings):
    """Where the server's databases are: all that `python -m mlstack.tracking.collation` needs."""

    store_uri: SecretStr | None = env("MLFLOW_BACKEND_STORE_URI")  # may hold a password
    db_host: str | None = env("DB_HOST")
    db_port: int = env("DB_PORT", 3306, 1)
    db_name: str = env("DB_NAME", "mlflow")
    db_user: str | None = env("DB_USER")
    db_password: SecretStr | None = env("DB_PASSWORD")
    auth_enabled: bool = env("MLFLOW_AUTH_ENABLED", False)
    auth_db_name: str = env("MLFLOW_AUTH_DB_NAME", "mlflow_auth")

    def backend_url(self) -> URL:
        """The backend store as a SQLAlchemy URL: MLFLOW_BACKEND_STORE_URI, else DB_*."""
        if not self.store_uri:
            # The password is escaped by SQLAlchemy, whatever it holds.
            return URL.create(
                "mysql+pymysql",
                username=_require(self.db_user, "DB_USER", NEEDS_DB_PARTS),
                password=_require(self.db_password, "DB_PASSWORD", NEEDS_DB_PARTS),
                host=_require(self.db_host, "DB_HOST", NEEDS_DB_PARTS),
                port=self.db_port,
                database=self.db_name,
            )
        try:
            url = make_url(self.store_uri.get_secret_value())
        except ArgumentError:
            raise StartupError("MLFLOW_BACKEND_STORE_URI is not a database URI") from None
        if url.drivername != "mysql+pymysql":
            raise StartupError(
                "MLFLOW_BACKEND_STORE_URI must start with mysql+pymysql:// "
                f"(got {url.drivername}://); this image ships the PyMySQL driver only"
            )
        if not url.host or not url.database:
            raise StartupError("MLFLOW_BACKEND_STORE_URI must name a host and a database")
        return url

    @property
    def backend_store_uri(self) -> str:
        """The backend store URI, password included (never log it)."""
        return self.backend_url().render_as_string(hide_password=False)

    @property
    def auth_database_uri(self) -> str:
        """The auth app's own database, on the backend store's server."""
        url = self.backend_url().set(database=self.auth_db_name)
        return url.render_as_string(hide_password=False)


class Settings(StoreSettings):
    """Everything the start-up and the server need; checked as a whole when read."""

    db_wait_timeout: int = env("DB_WAIT_TIMEOUT", 60, 1)
    artifacts_destination: str | None = env("ARTIFACTS_DESTINATION")
    s3_endpoint_url: str | None = env("MLFLOW_S3_ENDPOINT_URL")
    workers: int = env("MLFLOW_WORKERS", 4, 1)
    port: int = env("PORT", 5000, 1)
    log_level: str = env("LOG_LEVEL", "info")
    presigned_artifact_urls: bool = env("MLFLOW_PRESIGNED_ARTIFACT_URLS", False)
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = env("ALLOWED_HOSTS", ())
    # MLflow's own Host-header list; when set, it replaces ours (entrypoint).
    mlflow_allowed_hosts: str | None = env("MLFLOW_SERVER_ALLOWED_HOSTS")
    auth_admin_username: str = env("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    auth_admin_password: SecretStr | None = env("MLFLOW_AUTH_ADMIN_PASSWORD")
    auth_secret_key: SecretStr | None = env("MLFLOW_FLASK_SERVER_SECRET_KEY")
    auth_default_permission: str = env("MLFLOW_AUTH_DEFAULT_PERMISSION", "READ")
    # Appended to the 401 answer: how this deployment's users find their login.
    auth_login_hint: str = env("MLFLOW_AUTH_LOGIN_HINT", "")
    db_connect_timeout: int = env("DB_CONNECT_TIMEOUT", Bounds.db_connect_timeout, 1)
    db_read_timeout: int = env("DB_READ_TIMEOUT", Bounds.db_read_timeout, 1)
    s3_connect_timeout: int = env("S3_CONNECT_TIMEOUT", Bounds.s3_connect_timeout, 1)
    s3_read_timeout: int = env("S3_READ_TIMEOUT", Bounds.s3_read_timeout, 1)
    s3_max_attempts: int = env("S3_MAX_ATTEMPTS", Bounds.s3_max_attempts, 1)
    # Proxies whose X-Forwarded-* headers are believed (IPs or CIDRs).
    forwarded_allow_ips: str = env("FORWARDED_ALLOW_IPS", LOOPBACK)
    keepalive: int = env("KEEPALIVE_TIMEOUT", DEFAULT_KEEPALIVE_S, 1)
    # `mlflow server --expose-prometheus DIR`'s variable: MLflow's own /metrics, its workers'
    # samples kept in DIR (entrypoint, gunicorn_conf).
    expose_prometheus: str | None = env("MLFLOW_EXPOSE_PROMETHEUS")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(host.strip() for host in value.split(",") if host.strip())
        return value

    @field_validator("artifacts_destination")
    @classmethod
    def _s3(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or len(value) <= len("s3://")):
            raise ValueError(f"must be s3://bucket[/prefix], got {value!r}")
        return value.rstrip("/") if value else value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(
                f"must be debug, info, warning, error or critical, got {value.lower()!r}"
            )
        return value.lower()

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: str) -> str:
        items = [item.strip() for item in value.split(",") if item.strip()]
        for item in items:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item)
            except ValueError:
                raise ValueError(
                    f"must list IP addresses or networks (10.0.0.0/24), got {item!r}"
                ) from None
        return ",".join(items)

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        """What one variable cannot tell alone: the store, the destination, the auth set."""
        self.backend_url()
        _require(
            self.artifacts_destination,
            "ARTIFACTS_DESTINATION",
            "where artifacts are stored, e.g. s3://my-bucket/artifacts",
        )
        self.auth  # noqa: B018 - checks the auth settings when auth is on
        return self

    @property
    def bounds(self) -> Bounds:
        """The bounded waits of the serving workers."""
        return Bounds(
            self.db_connect_timeout,
            self.db_read_timeout,
            self.s3_connect_timeout,
            self.s3_read_timeout,
            self.s3_max_attempts,
        )

    @property
    def auth(self) -> AuthSettings | None:
        """The basic-auth app's settings when MLFLOW_AUTH_ENABLED, else None."""
        if not self.auth_enabled:
            return None
        password = _require(
            self.auth_admin_password,
            "MLFLOW_AUTH_ADMIN_PASSWORD",
            "basic-auth needs the admin's password",
        )
        if len(password) < MIN_ADMIN_PASSWORD_LENGTH:
            raise StartupError(
                f"MLFLOW_AUTH_ADMIN_PASSWORD must be at least {MIN_ADMIN_PASSWORD_LENGTH} "
                "characters"
            )
        if self.auth_db_name == self.backend_url().database:
            raise StartupError("MLFLOW_AUTH_DB_NAME must differ from the tracking database's name")
        permission = self.auth_default_permission.upper()
        if permission not in PERMISSIONS:
            raise StartupError(
                "MLFLOW_AUTH_DEFAULT_PERMISSION must be READ, USE, EDIT, MANAGE or NO_PERMISSIONS"
            )
        return AuthSettings(
            database_uri=self.auth_database_uri,
            admin_username=self.auth_admin_username,
            admin_password=password,
            secret_key=_require(
                self.auth_secret_key,
                "MLFLOW_FLASK_SERVER_SECRET_KEY",
                "basic-auth needs a static Flask secret key",
            ),
            default_permission=permission,
        )


def load_settings(given: Mapping[str, str] | None = None, kind: type[S] = Settings) -> S:
    """Read and check every setting (os.environ, or only `given`); StartupError names the
    first bad one."""
    return load(kind, given, error=StartupError)
