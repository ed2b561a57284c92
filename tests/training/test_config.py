"""The training runner's settings: read from the environment in one place, one line per error."""

from __future__ import annotations

import pytest

from mlstack.training.config import read_settings
from mlstack.training.errors import TrainingError


def test_defaults() -> None:
    settings = read_settings({})
    assert settings.tracking_wait_timeout == 20
    assert (settings.tracking_uri, settings.job_name, settings.program) == (None, None, None)
    assert settings.tracking_insecure_tls is False


@pytest.mark.parametrize("raw", ["soon", "0", "-5", "nan", "inf"])
def test_a_bad_wait_is_named_in_one_line(raw: str) -> None:
    with pytest.raises(TrainingError) as raised:
        read_settings({"TRACKING_WAIT_TIMEOUT": raw})
    assert str(raised.value) == (
        f"TRACKING_WAIT_TIMEOUT must be a number of seconds above 0, got {raw!r}"
    )


def test_mlflow_client_variables_and_their_secrets() -> None:
    settings = read_settings(
        {
            "MLFLOW_TRACKING_USERNAME": "alice",
            "MLFLOW_TRACKING_PASSWORD": "pw-secret",
            "MLFLOW_TRACKING_TOKEN": "token-secret",
            "MLFLOW_TRACKING_INSECURE_TLS": "True",
        }
    )
    assert settings.tracking_insecure_tls is True
    assert settings.tracking_password is not None
    assert settings.tracking_password.get_secret_value() == "pw-secret"
    assert "pw-secret" not in repr(settings) and "token-secret" not in repr(settings)
    with pytest.raises(TrainingError, match="MLFLOW_TRACKING_INSECURE_TLS must be true or false"):
        read_settings({"MLFLOW_TRACKING_INSECURE_TLS": "perhaps"})


def test_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_JOB_NAME", "job-7")
    monkeypatch.setenv("TRACKING_WAIT_TIMEOUT", "2.5")
    monkeypatch.setenv("SAGEMAKER_PROGRAM", " ")  # blank: unset, the built-in script runs
    settings = read_settings()
    assert (settings.job_name, settings.tracking_wait_timeout) == ("job-7", 2.5)
    assert settings.program is None
