"""Settings of the tracking server, read from the environment in one place."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mlstack_tracking.errors import StartupError

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
MIN_ADMIN_PASSWORD_LENGTH = 12  # mlflow >= 3.16.1 refuses shorter bootstrap passwords
LOOPBACK = "127.0.0.1,::1"
# Above the Fargate template's load balancer idle timeout (120 s): a target that closes an
# idle connection first makes the load balancer answer 502 to the request it sends on it.
DEFAULT_KEEPALIVE_S = 130


@dataclass(frozen=True)
class Bounds:
    """How long the server waits on its database and object store (README "Bounded waits")."""

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


@dataclass(frozen=True)
class Settings:
    """Everything the start-up and the server need."""

    backend_store_uri: str
    artifacts_destination: str
    s3_endpoint_url: str | None
    workers: int
    port: int
    log_level: str
    db_wait_timeout: float
    presigned_artifact_urls: bool
    allowed_hosts: tuple[str, ...]
    auth: AuthSettings | None
    bounds: Bounds = Bounds()
    forwarded_allow_ips: str = LOOPBACK
    keepalive: int = DEFAULT_KEEPALIVE_S


def _require(env: Mapping[str, str], name: str, hint: str = "") -> str:
    value = env.get(name, "").strip()
    if not value:
        raise StartupError(f"{name} is not set{': ' + hint if hint else ''}")
    return value


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise StartupError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise StartupError(f"{name} must be at least {minimum}, got {value}")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise StartupError(f"{name} must be true or false, got {raw!r}")


def _forwarded_allow_ips(env: Mapping[str, str]) -> str:
    """FORWARDED_ALLOW_IPS: proxies whose X-Forwarded-* headers are believed (IPs or CIDRs)."""
    raw = env.get("FORWARDED_ALLOW_IPS", "").strip() or LOOPBACK
    items = [item.strip() for item in raw.split(",") if item.strip()]
    for item in items:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item)
        except ValueError:
            raise StartupError(
                f"FORWARDED_ALLOW_IPS must list IP addresses or networks (10.0.0.0/24), "
                f"got {item!r}"
            ) from None
    return ",".join(items)


def _bounds(env: Mapping[str, str]) -> Bounds:
    default = Bounds()
    return Bounds(
        db_connect_timeout=_integer(env, "DB_CONNECT_TIMEOUT", default.db_connect_timeout),
        db_read_timeout=_integer(env, "DB_READ_TIMEOUT", default.db_read_timeout),
        s3_connect_timeout=_integer(env, "S3_CONNECT_TIMEOUT", default.s3_connect_timeout),
        s3_read_timeout=_integer(env, "S3_READ_TIMEOUT", default.s3_read_timeout),
        s3_max_attempts=_integer(env, "S3_MAX_ATTEMPTS", default.s3_max_attempts),
    )


def _mysql_url(env: Mapping[str, str], database: str) -> URL:
    """A MySQL URL from DB_*; the password is escaped by SQLAlchemy, whatever it holds."""
    return URL.create(
        "mysql+pymysql",
        username=_require(env, "DB_USER", "set it or MLFLOW_BACKEND_STORE_URI"),
        password=_require(env, "DB_PASSWORD", "set it or MLFLOW_BACKEND_STORE_URI"),
        host=_require(env, "DB_HOST", "set it or MLFLOW_BACKEND_STORE_URI"),
        port=_integer(env, "DB_PORT", 3306),
        database=database,
    )


def backend_store_url(env: Mapping[str, str]) -> URL:
    """The backend store as a SQLAlchemy URL: MLFLOW_BACKEND_STORE_URI, else DB_*."""
    uri = env.get("MLFLOW_BACKEND_STORE_URI", "").strip()
    if not uri:
        return _mysql_url(env, env.get("DB_NAME", "").strip() or "mlflow")
    try:
        url = make_url(uri)
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


def _auth_settings(env: Mapping[str, str], backend: URL) -> AuthSettings | None:
    if not _boolean(env, "MLFLOW_AUTH_ENABLED", False):
        return None
    password = _require(env, "MLFLOW_AUTH_ADMIN_PASSWORD", "basic-auth needs the admin's password")
    if len(password) < MIN_ADMIN_PASSWORD_LENGTH:
        raise StartupError(
            f"MLFLOW_AUTH_ADMIN_PASSWORD must be at least {MIN_ADMIN_PASSWORD_LENGTH} characters"
        )
    auth_db = env.get("MLFLOW_AUTH_DB_NAME", "").strip() or "mlflow_auth"
    if auth_db == backend.database:
        raise StartupError("MLFLOW_AUTH_DB_NAME must differ from the tracking database's name")
    permission = env.get("MLFLOW_AUTH_DEFAULT_PERMISSION", "").strip().upper() or "READ"
    if permission not in {"READ", "USE", "EDIT", "MANAGE", "NO_PERMISSIONS"}:
        raise StartupError(
            "MLFLOW_AUTH_DEFAULT_PERMISSION must be READ, USE, EDIT, MANAGE or NO_PERMISSIONS"
        )
    return AuthSettings(
        database_uri=backend.set(database=auth_db).render_as_string(hide_password=False),
        admin_username=env.get("MLFLOW_AUTH_ADMIN_USERNAME", "").strip() or "admin",
        admin_password=password,
        secret_key=_require(
            env, "MLFLOW_FLASK_SERVER_SECRET_KEY", "basic-auth needs a static Flask secret key"
        ),
        default_permission=permission,
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise StartupError naming the first bad one."""
    env = os.environ if env is None else env
    backend = backend_store_url(env)
    destination = _require(
        env, "ARTIFACTS_DESTINATION", "where artifacts are stored, e.g. s3://my-bucket/artifacts"
    )
    if not destination.startswith("s3://") or len(destination) <= len("s3://"):
        raise StartupError(
            f"ARTIFACTS_DESTINATION must be s3://bucket[/prefix], got {destination!r}"
        )
    log_level = (env.get("LOG_LEVEL", "").strip() or "info").lower()
    if log_level not in {"debug", "info", "warning", "error", "critical"}:
        raise StartupError(
            f"LOG_LEVEL must be debug, info, warning, error or critical, got {log_level!r}"
        )
    return Settings(
        backend_store_uri=backend.render_as_string(hide_password=False),
        artifacts_destination=destination.rstrip("/"),
        s3_endpoint_url=env.get("MLFLOW_S3_ENDPOINT_URL", "").strip() or None,
        workers=_integer(env, "MLFLOW_WORKERS", 4),
        port=_integer(env, "PORT", 5000),
        log_level=log_level,
        db_wait_timeout=float(_integer(env, "DB_WAIT_TIMEOUT", 60)),
        presigned_artifact_urls=_boolean(env, "MLFLOW_PRESIGNED_ARTIFACT_URLS", False),
        allowed_hosts=tuple(
            h.strip() for h in env.get("ALLOWED_HOSTS", "").split(",") if h.strip()
        ),
        auth=_auth_settings(env, backend),
        bounds=_bounds(env),
        forwarded_allow_ips=_forwarded_allow_ips(env),
        keepalive=_integer(env, "KEEPALIVE_TIMEOUT", DEFAULT_KEEPALIVE_S),
    )
