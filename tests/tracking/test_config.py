"""Settings of the tracking server: every bad one is named in one line."""

import pytest
from sqlalchemy.engine import make_url

from mlstack.core.errors import StartupError
from mlstack.tracking.config import StoreSettings, load_settings

BASE = {
    "DB_HOST": "mysql",
    "DB_USER": "mlflow",
    "DB_PASSWORD": "p@ss/w:rd%",
    "DB_NAME": "mlflow",
    "ARTIFACTS_DESTINATION": "s3://bucket/artifacts",
}


def test_password_with_url_characters_is_escaped_into_the_uri() -> None:
    settings = load_settings(BASE)
    url = make_url(settings.backend_store_uri)
    assert url.password == "p@ss/w:rd%"
    assert (url.host, url.port, url.database) == ("mysql", 3306, "mlflow")


def test_full_uri_wins_over_parts() -> None:
    settings = load_settings(
        {**BASE, "MLFLOW_BACKEND_STORE_URI": "mysql+pymysql://u:p@db.example:3307/tracking"}
    )
    url = make_url(settings.backend_store_uri)
    assert (url.host, url.port, url.database) == ("db.example", 3307, "tracking")


def test_defaults() -> None:
    settings = load_settings(BASE)
    assert settings.workers == 4
    assert settings.port == 5000
    assert settings.auth is None
    assert settings.presigned_artifact_urls is False
    assert settings.forwarded_allow_ips == "127.0.0.1,::1"  # loopback only
    assert settings.keepalive > 120  # above the Fargate load balancer's idle timeout


def test_bounds_and_proxies_are_read() -> None:
    settings = load_settings(
        {
            **BASE,
            "DB_CONNECT_TIMEOUT": "3",
            "DB_READ_TIMEOUT": "7",
            "S3_READ_TIMEOUT": "9",
            "S3_MAX_ATTEMPTS": "1",
            "FORWARDED_ALLOW_IPS": "127.0.0.1, 10.0.0.0/24,::1",
            "KEEPALIVE_TIMEOUT": "75",
        }
    )
    bounds = settings.bounds
    assert (bounds.db_connect_timeout, bounds.db_read_timeout) == (3, 7)
    assert (bounds.s3_connect_timeout, bounds.s3_read_timeout, bounds.s3_max_attempts) == (5, 9, 1)
    assert settings.forwarded_allow_ips == "127.0.0.1,10.0.0.0/24,::1"
    assert settings.keepalive == 75


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DB_PASSWORD": ""}, "DB_PASSWORD is not set"),
        ({"ARTIFACTS_DESTINATION": ""}, "ARTIFACTS_DESTINATION is not set"),
        ({"ARTIFACTS_DESTINATION": "/tmp/artifacts"}, "must be s3://bucket"),
        ({"MLFLOW_WORKERS": "two"}, "MLFLOW_WORKERS must be a whole number"),
        ({"MLFLOW_WORKERS": "0"}, "MLFLOW_WORKERS must be at least 1"),
        ({"DB_PORT": "x"}, "DB_PORT must be a whole number"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be"),
        ({"MLFLOW_BACKEND_STORE_URI": "postgresql://h/db"}, "must start with mysql+pymysql://"),
        ({"MLFLOW_AUTH_ENABLED": "maybe"}, "MLFLOW_AUTH_ENABLED must be true or false"),
        ({"DB_READ_TIMEOUT": "0"}, "DB_READ_TIMEOUT must be at least 1"),
        ({"S3_MAX_ATTEMPTS": "x"}, "S3_MAX_ATTEMPTS must be a whole number"),
        ({"FORWARDED_ALLOW_IPS": "10.0.0.1/24"}, "FORWARDED_ALLOW_IPS must list IP addresses"),
        ({"FORWARDED_ALLOW_IPS": "lb.internal"}, "FORWARDED_ALLOW_IPS must list IP addresses"),
        ({"MLFLOW_AUTH_ENABLED": "true"}, "MLFLOW_AUTH_ADMIN_PASSWORD is not set"),
        (
            {"MLFLOW_AUTH_ENABLED": "true", "MLFLOW_AUTH_ADMIN_PASSWORD": "short"},
            "at least 12 characters",
        ),
        (
            {"MLFLOW_AUTH_ENABLED": "true", "MLFLOW_AUTH_ADMIN_PASSWORD": "long-enough-pass"},
            "MLFLOW_FLASK_SERVER_SECRET_KEY is not set",
        ),
    ],
)
def test_bad_settings_are_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(StartupError, match=message.replace("+", r"\+")) as raised:
        load_settings({**BASE, **change})
    assert "\n" not in str(raised.value)


def test_auth_database_is_its_own_on_the_same_server() -> None:
    settings = load_settings(
        {
            **BASE,
            "MLFLOW_AUTH_ENABLED": "true",
            "MLFLOW_AUTH_ADMIN_PASSWORD": "long-enough-pass",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
        }
    )
    assert settings.auth is not None
    auth_url = make_url(settings.auth.database_uri)
    assert auth_url.database == "mlflow_auth"
    assert auth_url.host == "mysql"
    assert auth_url.password == BASE["DB_PASSWORD"]
    assert settings.auth.admin_username == "admin"


def test_blank_values_mean_the_default_and_booleans_take_the_usual_spellings() -> None:
    blank = load_settings({**BASE, "MLFLOW_WORKERS": " ", "DB_PORT": "", "LOG_LEVEL": ""})
    assert (blank.workers, make_url(blank.backend_store_uri).port, blank.log_level) == (
        4,
        3306,
        "info",
    )
    for raw, expected in [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False)]:
        assert (
            load_settings({**BASE, "MLFLOW_PRESIGNED_ARTIFACT_URLS": raw}).presigned_artifact_urls
            is expected
        )


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = load_settings(
        {
            **BASE,
            "MLFLOW_BACKEND_STORE_URI": "mysql+pymysql://u:uri-secret@db/mlflow",
            "MLFLOW_AUTH_ENABLED": "true",
            "MLFLOW_AUTH_ADMIN_PASSWORD": "long-enough-pass",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask-secret",
        }
    )
    shown = repr(settings)
    for secret in ("uri-secret", BASE["DB_PASSWORD"], "long-enough-pass", "flask-secret"):
        assert secret not in shown


def test_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**BASE, "ALLOWED_HOSTS": "a.example, b.example"}.items():
        monkeypatch.setenv(name, value)
    assert load_settings().allowed_hosts == ("a.example", "b.example")


def test_the_collation_command_needs_the_store_only() -> None:
    store = load_settings({"MLFLOW_BACKEND_STORE_URI": "mysql+pymysql://u:p@db/t"}, StoreSettings)
    assert make_url(store.backend_store_uri).database == "t"
    with pytest.raises(StartupError, match="ARTIFACTS_DESTINATION is not set"):
        load_settings({"MLFLOW_BACKEND_STORE_URI": "mysql+pymysql://u:p@db/t"})
