"""Pieces of the entrypoint that need no container."""

from mlstack_tracking.config import load_settings
from mlstack_tracking.entrypoint import allowed_host_patterns, gunicorn_command

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
    assert command[-1] == "mlstack_tracking.app:create_app()"
