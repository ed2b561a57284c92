"""Pieces of the entrypoint that need no container."""

import boto3
from sqlalchemy.engine import make_url

from mlstack.tracking.artifacts import bound_s3_clients
from mlstack.tracking.config import load_settings
from mlstack.tracking.entrypoint import allowed_host_patterns, gunicorn_command, server_environment

SETTINGS = load_settings(
    {
        "DB_HOST": "mysql",
        "DB_USER": "u",
        "DB_PASSWORD": "p",
        "ARTIFACTS_DESTINATION": "s3://b",
        "MLFLOW_WORKERS": "3",
        "PORT": "5055",
    }
)


def test_extra_hosts_keep_the_defaults() -> None:
    patterns = allowed_host_patterns(("mlflow.example.com",))
    assert {"mlflow.example.com", "mlflow.example.com:*", "localhost", "10.*"} <= set(patterns)


def test_gunicorn_serves_the_full_app_with_uvicorn_workers() -> None:
    command = gunicorn_command(SETTINGS)
    assert command[0] == "gunicorn"
    assert command[command.index("--workers") + 1] == "3"
    assert command[command.index("--bind") + 1] == "0.0.0.0:5055"
    assert command[-1] == "mlstack.tracking.app:create_app()"


def test_gunicorn_trusts_forwarded_headers_only_from_configured_proxies() -> None:
    command = gunicorn_command(SETTINGS)
    assert command[command.index("--forwarded-allow-ips") + 1] == "127.0.0.1,::1"
    assert int(command[command.index("--keep-alive") + 1]) > 120


def test_workers_get_a_database_uri_with_timeouts() -> None:
    env = server_environment(SETTINGS)
    for name in ("_MLFLOW_SERVER_FILE_STORE", "_MLFLOW_SERVER_REGISTRY_STORE"):
        query = make_url(env[name]).query
        assert query == {"connect_timeout": "5", "read_timeout": "10", "write_timeout": "10"}
        assert make_url(env[name]).password == "p"


def test_timeouts_already_in_the_uri_stay() -> None:
    settings = load_settings(
        {
            "MLFLOW_BACKEND_STORE_URI": "mysql+pymysql://u:p@db/mlflow?read_timeout=60",
            "ARTIFACTS_DESTINATION": "s3://b",
        }
    )
    query = make_url(server_environment(settings)["_MLFLOW_SERVER_FILE_STORE"]).query
    assert query["read_timeout"] == "60"
    assert query["connect_timeout"] == "5"


def test_mlflows_s3_client_gets_the_bounds(monkeypatch) -> None:
    from mlflow.store.artifact import s3_artifact_repo

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        bound_s3_clients(connect_timeout=4, read_timeout=9, max_attempts=2)
        s3_artifact_repo._cached_get_s3_client.cache_clear()
        client = s3_artifact_repo._get_s3_client(s3_endpoint_url="http://minio:9000")
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (4, 9)
        assert config.retries["total_max_attempts"] == 2  # the first try included
        assert config.s3 == {"addressing_style": "auto"}  # MLflow's own settings stay
    finally:
        boto3.DEFAULT_SESSION = None
        s3_artifact_repo._cached_get_s3_client.cache_clear()
