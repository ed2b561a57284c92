"""Settings of the inference server, read from the environment in one place.

The SAGEMAKER_* names and defaults follow SageMaker's hosting contract and its
inference toolkits: port 8080 unless SAGEMAKER_BIND_TO_PORT, one worker per
CPU, a 60 s invocation budget, 6 MB real-time payloads. The INFERENCE_MAX_*
limits bound the work one request may cause (rows, columns, values, nesting),
so that a small body cannot cost a worker gigabytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlstack_inference.errors import StartupError

# SageMaker extracts model.tar.gz here before the container starts.
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}
LOG_LEVELS = {"debug", "info", "warning", "error", "critical"}
MEBIBYTE = 1024 * 1024
# SageMaker gives an invocation 60 s in all; reading its body cannot take longer.
INVOCATION_LIMIT_SECONDS = 60


@dataclass(frozen=True)
class Limits:
    """The most work one request may ask for; each refusal is a 400 naming its variable."""

    max_rows: int = 1_000_000
    max_columns: int = 10_000
    max_values: int = 10_000_000
    max_depth: int = 32


@dataclass(frozen=True)
class Settings:
    """Everything the entrypoint, gunicorn and the app need."""

    port: int = 8080
    workers: int = 1
    timeout: int = 60
    max_payload_mb: int = 6
    batch: bool = False
    model_uri: str | None = None
    model_dir: str = SAGEMAKER_MODEL_DIR
    fast_path: bool = True
    log_level: str = "info"
    body_timeout: int = 30
    limits: Limits = Limits()

    @property
    def max_payload_bytes(self) -> int | None:
        """The largest accepted request body; None when the limit is off (0)."""
        return self.max_payload_mb * MEBIBYTE if self.max_payload_mb else None


def default_workers() -> int:
    """One worker per CPU this process may run on, as SageMaker's toolkits default."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _integer(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
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


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise StartupError naming the first bad one."""
    env = os.environ if env is None else env
    port = _integer(env, "SAGEMAKER_BIND_TO_PORT", 8080)
    if port > 65535:
        raise StartupError(f"SAGEMAKER_BIND_TO_PORT must be a TCP port (1-65535), got {port}")
    log_level = (env.get("LOG_LEVEL", "").strip() or "info").lower()
    if log_level not in LOG_LEVELS:
        raise StartupError(
            f"LOG_LEVEL must be debug, info, warning, error or critical, got {log_level!r}"
        )
    timeout = _integer(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60)
    body_timeout = _integer(env, "INFERENCE_BODY_TIMEOUT", 30)
    if body_timeout > INVOCATION_LIMIT_SECONDS:
        raise StartupError(
            f"INFERENCE_BODY_TIMEOUT must be at most {INVOCATION_LIMIT_SECONDS} (SageMaker's "
            f"invocation limit in seconds), got {body_timeout}"
        )
    return Settings(
        port=port,
        workers=_integer(env, "SAGEMAKER_MODEL_SERVER_WORKERS", default_workers()),
        timeout=timeout,
        # 0 turns the limit off, as MaxPayloadInMB=0 does for chunked batch transforms.
        max_payload_mb=_integer(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, minimum=0),
        batch=_boolean(env, "SAGEMAKER_BATCH", False),
        model_uri=env.get("MODEL_URI", "").strip() or None,
        fast_path=_boolean(env, "INFERENCE_FAST_PATH", True),
        log_level=log_level,
        body_timeout=body_timeout,
        limits=Limits(
            max_rows=_integer(env, "INFERENCE_MAX_ROWS", Limits.max_rows),
            max_columns=_integer(env, "INFERENCE_MAX_COLUMNS", Limits.max_columns),
            max_values=_integer(env, "INFERENCE_MAX_VALUES", Limits.max_values),
            max_depth=_integer(env, "INFERENCE_MAX_DEPTH", Limits.max_depth, minimum=4),
        ),
    )
