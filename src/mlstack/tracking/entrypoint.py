"""Container entrypoint: check settings, wait for the database, migrate, then serve.

Every failure before serving prints one line, "mlstack-tracking: error: ...",
and exits 1 within a bounded time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import uuid
from pathlib import Path

from mlstack.core.errors import StartupError
from mlstack.tracking import artifacts, auth, database, schema
from mlstack.tracking.collation.startup_warning import warn_if_case_insensitive
from mlstack.tracking.config import Settings, load_settings

log = logging.getLogger("mlstack.tracking")


def allowed_host_patterns(extra_hosts: tuple[str, ...]) -> list[str]:
    """MLflow's default Host-header patterns (loopback, private addresses) plus extra names.

    MLflow 3.5+ answers 403 to other Host headers (DNS-rebinding protection);
    a load balancer's DNS name or a compose service name must be added, while
    the defaults keep health checks on private addresses working.
    """
    from mlflow.server.security_utils import get_default_allowed_hosts

    extras = [pattern for host in extra_hosts for pattern in (host, f"{host}:*")]
    return get_default_allowed_hosts() + extras


def server_environment(settings: Settings) -> dict[str, str]:
    """The variables MLflow's workers read, as `mlflow server --serve-artifacts` sets them."""
    from mlflow.environment_variables import (
        _MLFLOW_AUTH_ADMIN_BOOTSTRAPPED,
        _MLFLOW_IN_JOB_EXECUTOR,
        _MLFLOW_SERVER_BOOT_ID,
        _MLFLOW_SGI_NAME,
        MLFLOW_FLASK_SERVER_SECRET_KEY,
    )
    from mlflow.server.constants import (
        ARTIFACT_ROOT_ENV_VAR,
        ARTIFACTS_DESTINATION_ENV_VAR,
        BACKEND_STORE_URI_ENV_VAR,
        REGISTRY_STORE_URI_ENV_VAR,
        SERVE_ARTIFACTS_ENV_VAR,
    )

    runtime_uri = database.with_timeouts(
        settings.backend_store_uri,
        settings.bounds.db_connect_timeout,
        settings.bounds.db_read_timeout,
    )
    env = {
        BACKEND_STORE_URI_ENV_VAR: runtime_uri,
        REGISTRY_STORE_URI_ENV_VAR: runtime_uri,
        # Clients see mlflow-artifacts:/ and go through this server, never to S3.
        ARTIFACT_ROOT_ENV_VAR: "mlflow-artifacts:/",
        SERVE_ARTIFACTS_ENV_VAR: "true",
        ARTIFACTS_DESTINATION_ENV_VAR: settings.artifacts_destination,
        _MLFLOW_SGI_NAME.name: "uvicorn",
        _MLFLOW_SERVER_BOOT_ID.name: uuid.uuid4().hex,
        _MLFLOW_IN_JOB_EXECUTOR.name: "false",
    }
    if settings.expose_prometheus:
        env.update(prometheus_environment(settings.expose_prometheus))
    if settings.allowed_hosts and not settings.mlflow_allowed_hosts:
        env["MLFLOW_SERVER_ALLOWED_HOSTS"] = ",".join(allowed_host_patterns(settings.allowed_hosts))
    if settings.auth is not None:
        env[MLFLOW_FLASK_SERVER_SECRET_KEY.name] = settings.auth.secret_key
        env["MLFLOW_AUTH_ADMIN_USERNAME"] = settings.auth.admin_username
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = settings.auth.admin_password
        env[_MLFLOW_AUTH_ADMIN_BOOTSTRAPPED.name] = "true"
    return env


def prometheus_environment(directory: str) -> dict[str, str]:
    """What `mlflow server --expose-prometheus DIR` sets: MLflow's app then serves /metrics
    through prometheus_flask_exporter's multiprocess collector, which reads every worker's
    samples from DIR (mlflow/server/__init__.py, prometheus_exporter.py). prometheus_client
    itself reads the upper-case name; MLflow checks the lower-case one."""
    from mlflow.server.constants import PROMETHEUS_EXPORTER_ENV_VAR

    return {PROMETHEUS_EXPORTER_ENV_VAR: directory, "PROMETHEUS_MULTIPROC_DIR": directory}


def empty_directory(directory: str) -> None:
    """The metrics directory, without an earlier server's samples (they would be counted
    again): prometheus_client's files, `*.db`, removed; nothing else touched."""
    try:
        os.makedirs(directory, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    except OSError as error:
        raise StartupError(
            f"MLFLOW_EXPOSE_PROMETHEUS={directory}: cannot empty it or create it "
            f"({error.strerror}); give a writable path, e.g. /tmp/mlflow-metrics"
        ) from None


def prepare(settings: Settings) -> None:
    """Everything before serving; leaves the server's variables in os.environ."""
    if settings.expose_prometheus:
        empty_directory(settings.expose_prometheus)
    database.wait_for_database(settings.backend_store_uri, settings.db_wait_timeout)
    artifacts.check_bucket(
        settings.artifacts_destination, settings.s3_endpoint_url, settings.db_wait_timeout
    )
    env = server_environment(settings)
    if settings.auth is not None:
        database.ensure_database(settings.auth.database_uri)
        # The workers' auth store gets the same bounded waits as the tracking store.
        runtime_auth = dataclasses.replace(
            settings.auth,
            database_uri=database.with_timeouts(
                settings.auth.database_uri,
                settings.bounds.db_connect_timeout,
                settings.bounds.db_read_timeout,
            ),
        )
        env["MLFLOW_AUTH_CONFIG_PATH"] = auth.write_auth_config(runtime_auth)
    os.environ.update(env)  # written for gunicorn and its workers (exec'd next), not read
    # One replica migrates at a time; the others then find the schema current.
    with database.schema_lock(settings.backend_store_uri):
        migrate(settings.backend_store_uri)
        if settings.auth is not None:
            schema.use_case_sensitive_default(settings.auth.database_uri)
            auth.create_initial_auth_tables(settings.auth.database_uri)
            auth.bootstrap_auth()
    warn_if_case_insensitive(settings)


def migrate(uri: str) -> None:
    """Check the database first, then create or upgrade MLflow's schema, or leave it be.

    MySQL cannot undo DDL, so whatever would stop a migration half-way is checked before
    the first statement (schema.py); a database that is already current is not touched.
    """
    current = schema.read(uri)
    schema.check_consistent(current)
    if current.current:
        schema.log_plan(current)
        return
    schema.check_trigger_privilege(uri, current)
    schema.use_case_sensitive_default(uri)
    schema.log_plan(current)
    database.upgrade_schema(uri)


def gunicorn_command(settings: Settings) -> list[str]:
    """The gunicorn command line that serves the full MLflow app."""
    return [
        "gunicorn",
        "--config",
        "python:mlstack.tracking.gunicorn_conf",
        "--bind",
        f"0.0.0.0:{settings.port}",
        "--workers",
        str(settings.workers),
        "--log-level",
        settings.log_level,
        # X-Forwarded-For / -Proto believed only from these peers (uvicorn's proxy headers).
        "--forwarded-allow-ips",
        settings.forwarded_allow_ips,
        "--keep-alive",
        str(settings.keepalive),
        "mlstack.tracking.app:create_app()",
    ]


def main() -> None:
    """Start the tracking server, or exit 1 with one line saying what is wrong."""
    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        prepare(settings)
    except StartupError as error:
        print(f"mlstack-tracking: error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    command = gunicorn_command(settings)
    log.info("serving on port %d with %d workers", settings.port, settings.workers)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
