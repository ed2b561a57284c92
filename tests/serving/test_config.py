"""Settings from the environment, the entrypoint's checks, and the gunicorn settings."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from mlstack.core.errors import StartupError
from mlstack.serving import entrypoint
from mlstack.serving.config import Limits, Settings, default_workers, load_settings


def test_defaults_follow_sagemaker() -> None:
    settings = load_settings({})
    assert settings == Settings(workers=default_workers())
    assert settings.port == 8080
    assert settings.timeout == 60
    assert settings.max_payload_bytes == 6 * 1024 * 1024


def test_every_variable() -> None:
    settings = load_settings(
        {
            "SAGEMAKER_BIND_TO_PORT": "9090",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": "120",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0",
            "SAGEMAKER_BATCH": "true",
            "MODEL_URI": "models:/diabetes@champion",
            "INFERENCE_FAST_PATH": "false",
            "LOG_LEVEL": "DEBUG",
            "INFERENCE_BODY_TIMEOUT": "60",
            "INFERENCE_MAX_ROWS": "10",
            "INFERENCE_MAX_COLUMNS": "20",
            "INFERENCE_MAX_VALUES": "30",
            "INFERENCE_MAX_DEPTH": "4",
            "INFERENCE_BATCH_MAX_ROWS": "1",
            "INFERENCE_BATCH_WAIT_MS": "5",
            "INFERENCE_MODEL_THREADS": "2",
        }
    )
    assert settings == Settings(
        port=9090,
        workers=3,
        timeout=120,
        max_payload_mb=0,
        batch=True,
        model_uri="models:/diabetes@champion",
        fast_path=False,
        log_level="debug",
        body_timeout=60,
        max_rows=10,
        max_columns=20,
        max_values=30,
        max_depth=4,
        batch_max_rows=1,
        batch_wait_ms=5,
        model_threads=2,
    )
    assert settings.limits == Limits(max_rows=10, max_columns=20, max_values=30, max_depth=4)
    assert settings.max_payload_bytes is None


def test_default_limits() -> None:
    settings = load_settings({})
    assert settings.body_timeout == 30
    assert settings.batch_max_rows == 32 and settings.batch_wait_ms == 0
    assert settings.model_threads is None  # the CPUs available / the workers
    assert settings.limits == Limits(
        max_rows=1_000_000, max_columns=10_000, max_values=10_000_000, max_depth=32
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SAGEMAKER_BIND_TO_PORT": "http"}, "SAGEMAKER_BIND_TO_PORT must be a whole number"),
        ({"SAGEMAKER_BIND_TO_PORT": "70000"}, "must be a TCP port"),
        (
            {"SAGEMAKER_MODEL_SERVER_WORKERS": "0"},
            "SAGEMAKER_MODEL_SERVER_WORKERS must be at least 1",
        ),
        ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "-1"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB must be at least 0"),
        ({"INFERENCE_BODY_TIMEOUT": "61"}, "INFERENCE_BODY_TIMEOUT must be at most 60"),
        ({"INFERENCE_MAX_ROWS": "0"}, "INFERENCE_MAX_ROWS must be at least 1"),
        ({"INFERENCE_MAX_DEPTH": "3"}, "INFERENCE_MAX_DEPTH must be at least 4"),
        ({"INFERENCE_MAX_VALUES": "many"}, "INFERENCE_MAX_VALUES must be a whole number"),
        ({"SAGEMAKER_BATCH": "maybe"}, "SAGEMAKER_BATCH must be true or false"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be"),
        ({"INFERENCE_BATCH_MAX_ROWS": "0"}, "INFERENCE_BATCH_MAX_ROWS must be at least 1"),
        ({"INFERENCE_BATCH_WAIT_MS": "1001"}, "INFERENCE_BATCH_WAIT_MS must be at most 1000"),
        ({"INFERENCE_MODEL_THREADS": "0"}, "INFERENCE_MODEL_THREADS must be at least 1"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(StartupError, match=message):
        load_settings(env)


def test_preflight(forest_model_dir: Path, tmp_path: Path) -> None:
    assert entrypoint.preflight(load_settings({}), str(forest_model_dir)) == str(forest_model_dir)
    with pytest.raises(StartupError, match="no MLflow model in"):
        entrypoint.preflight(load_settings({}), str(tmp_path))
    uri = {"MODEL_URI": "models:/diabetes@champion"}
    with pytest.raises(StartupError, match="needs MLFLOW_TRACKING_URI"):
        entrypoint.preflight(load_settings(uri))
    with_server = load_settings({**uri, "MLFLOW_TRACKING_URI": "http://t:5000"})
    assert entrypoint.preflight(with_server).startswith("MODEL_URI=")


def test_unknown_command_exits(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        entrypoint.main(["train"])
    assert exit_info.value.code == 2
    assert "run it as `docker run IMAGE serve`" in capsys.readouterr().err


def test_bad_setting_exits_with_one_line(capsys, monkeypatch) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "eighty")
    with pytest.raises(SystemExit) as exit_info:
        entrypoint.main(["serve"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mlstack-inference: error: SAGEMAKER_BIND_TO_PORT")


def test_gunicorn_settings_come_from_sagemaker_variables(monkeypatch, tmp_path) -> None:
    # The metrics' sample directory (gunicorn_conf prepares it) in tmp_path, not /dev/shm.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", "9091")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_WORKERS", "3")
    monkeypatch.setenv("SAGEMAKER_MODEL_SERVER_TIMEOUT", "45")
    sys.modules.pop("mlstack.serving.gunicorn_conf", None)
    conf = importlib.import_module("mlstack.serving.gunicorn_conf")
    assert conf.bind == ["0.0.0.0:9091"]
    assert conf.workers == 3
    assert conf.timeout == 45
    assert conf.worker_class == "mlstack.serving.worker.InferenceWorker"
    assert conf.graceful_timeout < 30  # SageMaker kills 30 s after SIGTERM


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[("true", True), ("1", True), ("Yes", True), (" on ", True)],
        *[("false", False), ("0", False), ("no", False), ("OFF", False)],
    ],
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    assert load_settings({"SAGEMAKER_BATCH": raw}).batch is expected


def test_blank_values_mean_the_default() -> None:
    assert load_settings({"SAGEMAKER_BIND_TO_PORT": " ", "LOG_LEVEL": ""}) == load_settings({})


def test_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERENCE_MAX_ROWS", "7")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://t:5000")
    settings = load_settings()
    assert (settings.limits.max_rows, settings.tracking_uri) == (7, "http://t:5000")
