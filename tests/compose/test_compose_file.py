"""compose/compose.yaml read as data: which service gets which secret, and stop timing."""

from __future__ import annotations

import re

import yaml

from mlstack.tracking import gunicorn_conf
from support.images import ROOT

COMPOSE = ROOT / "compose" / "compose.yaml"
AUTH_OFF = ROOT / "compose" / "auth-off.yaml"
# Each secret of .env, and the only services that may receive it.
SECRET_USERS = {
    "MYSQL_ROOT_PASSWORD": {"mysql"},
    "DB_PASSWORD": {"mysql", "tracking-server"},
    "MINIO_ROOT_USER": {"minio", "create-bucket"},
    "MINIO_ROOT_PASSWORD": {"minio", "create-bucket"},
    "MINIO_MLFLOW_PASSWORD": {"create-bucket", "tracking-server"},
    "MLFLOW_AUTH_ADMIN_PASSWORD": {"tracking-server"},
    "MLFLOW_FLASK_SERVER_SECRET_KEY": {"tracking-server"},
}


class ResetLoader(yaml.SafeLoader):
    """Compose's `!reset` tag (drop a value in an override file) read as None."""


ResetLoader.add_constructor("!reset", lambda loader, node: None)


def services(path=COMPOSE) -> dict:
    return yaml.load(path.read_text(), Loader=ResetLoader)["services"]  # noqa: S506


def variables_used(environment: dict) -> set[str]:
    """The ${VARIABLE...} names the service's environment interpolates."""
    text = " ".join(str(value) for value in environment.values())
    return set(re.findall(r"\$\{(\w+)", text))


def test_each_secret_reaches_only_the_services_that_use_it() -> None:
    given = {
        name: variables_used(service.get("environment", {})) for name, service in services().items()
    }
    for secret, allowed in SECRET_USERS.items():
        receivers = {name for name, used in given.items() if secret in used}
        assert receivers <= allowed, f"{secret} reaches {sorted(receivers - allowed)}"
        assert receivers, f"{secret} reaches no service"


def test_the_tracking_server_uses_a_minio_user_not_the_root_keys() -> None:
    environment = services()["tracking-server"]["environment"]
    assert "MINIO_MLFLOW_USER" in environment["AWS_ACCESS_KEY_ID"]
    assert "MINIO_MLFLOW_PASSWORD" in environment["AWS_SECRET_ACCESS_KEY"]


def test_auth_is_on_by_default_and_off_withholds_its_secrets() -> None:
    environment = services()["tracking-server"]["environment"]
    assert environment["MLFLOW_AUTH_ENABLED"] == "true"
    assert environment["MLFLOW_AUTH_DEFAULT_PERMISSION"].endswith(":-NO_PERMISSIONS}")
    off = services(AUTH_OFF)["tracking-server"]["environment"]
    assert off == {
        "MLFLOW_AUTH_ENABLED": "false",
        "MLFLOW_AUTH_ADMIN_PASSWORD": None,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": None,
    }
    assert "!reset" in AUTH_OFF.read_text()


def test_compose_waits_for_gunicorns_graceful_shutdown() -> None:
    grace = services()["tracking-server"].get("stop_grace_period", "10s")  # Docker's default
    seconds = int(grace.removesuffix("s"))
    assert seconds >= gunicorn_conf.graceful_timeout
