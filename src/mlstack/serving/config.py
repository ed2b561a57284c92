"""Settings of the inference server: the only module of the image that reads the environment.

The SAGEMAKER_* names and defaults follow SageMaker's hosting contract and its
inference toolkits: port 8080 unless SAGEMAKER_BIND_TO_PORT, one worker per
CPU, a 60 s invocation budget, 6 MB real-time payloads. The INFERENCE_MAX_*
limits bound the work one request may cause (rows, columns, values, nesting),
so that a small body cannot cost a worker gigabytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from mlstack.core.errors import StartupError
from mlstack.core.settings import Settings as BaseSettings
from mlstack.core.settings import env, load
from mlstack.serving.capture import MODES, CaptureConfig
from mlstack.serving.capture_format import split_s3_uri
from mlstack.serving.threads import available_cpus

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
POLICIES = ("strict", "warn", "model")  # INFERENCE_ENV_POLICY (model_env)
MEBIBYTE = 1024 * 1024
# SageMaker gives an invocation 60 s in all; reading its body cannot take longer.
INVOCATION_LIMIT_SECONDS = 60
MAX_PORT = 65535
# The longest a request may wait for others to share its model call.
MAX_BATCH_WAIT_MS = 1000


def default_workers() -> int:
    """One worker per CPU this process may use (affinity and cgroup quota), as SageMaker's
    toolkits default."""
    return available_cpus()


@dataclass(frozen=True)
class Limits:
    """The most work one request may ask for; each refusal is a 400 naming its variable."""

    max_rows: int = 1_000_000
    max_columns: int = 10_000
    max_values: int = 10_000_000
    max_depth: int = 32


class Settings(BaseSettings):
    """Everything the entrypoint, gunicorn, the workers and model_env read from the env."""

    port: int = env("SAGEMAKER_BIND_TO_PORT", 8080, 1)
    workers: Annotated[int, Field(ge=1)] = Field(
        default_factory=default_workers, validation_alias="SAGEMAKER_MODEL_SERVER_WORKERS"
    )
    timeout: int = env("SAGEMAKER_MODEL_SERVER_TIMEOUT", 60, 1)
    # 0 turns the limit off, as MaxPayloadInMB=0 does for chunked batch transforms.
    max_payload_mb: int = env("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6, 0)
    batch: bool = env("SAGEMAKER_BATCH", False)
    model_uri: str | None = env("MODEL_URI")
    # MODEL_URI's download at start, in all: past it the container stops, naming the server.
    model_fetch_timeout: int = env("INFERENCE_MODEL_FETCH_TIMEOUT", 30, 1)
    # The server that resolves models:/ and runs:/ URIs (MLflow's client reads it too).
    tracking_uri: str | None = env("MLFLOW_TRACKING_URI")
    fast_path: bool = env("INFERENCE_FAST_PATH", True)
    # Concurrent requests predicted in one model call, when that is proven exact (batching.py).
    batch_max_rows: int = env("INFERENCE_BATCH_MAX_ROWS", 32, 1)
    batch_wait_ms: int = env("INFERENCE_BATCH_WAIT_MS", 0, 0, le=MAX_BATCH_WAIT_MS)
    # Native threads per worker (threads.py); unset: the CPUs available / the workers.
    model_threads: int | None = env("INFERENCE_MODEL_THREADS", None, 1)
    log_level: str = env("LOG_LEVEL", "info")
    body_timeout: int = env("INFERENCE_BODY_TIMEOUT", 30, 1)
    max_rows: int = env("INFERENCE_MAX_ROWS", Limits.max_rows, 1)
    max_columns: int = env("INFERENCE_MAX_COLUMNS", Limits.max_columns, 1)
    max_values: int = env("INFERENCE_MAX_VALUES", Limits.max_values, 1)
    max_depth: int = env("INFERENCE_MAX_DEPTH", Limits.max_depth, 4)
    env_policy: str = env("INFERENCE_ENV_POLICY", "strict")
    env_cache: str | None = env("INFERENCE_ENV_CACHE")
    # Set in model images: the venv built into them.
    model_venv: str | None = env("INFERENCE_MODEL_VENV")
    # The entrypoint's hand-overs to the workers and to itself after re-exec (model_env).
    model_report: str = env("MLSTACK_MODEL_ENVIRONMENT", "{}")
    model_venv_active: str | None = env("MLSTACK_MODEL_VENV_ACTIVE")
    # Prometheus metrics on a port of their own (metrics.py); 0 turns them off.
    metrics_port: int = env("INFERENCE_METRICS_PORT", 8082, 0)
    # Data capture (capture.py): SageMaker's DataCaptureConfig for this container; off
    # unless a destination is set.
    capture_destination: str | None = env("INFERENCE_CAPTURE_DESTINATION")
    capture_sampling_percentage: int = env("INFERENCE_CAPTURE_SAMPLING_PERCENTAGE", 100, 0, le=100)
    capture_mode: str = env("INFERENCE_CAPTURE_MODE", "both")
    capture_csv_content_types: str = env("INFERENCE_CAPTURE_CSV_CONTENT_TYPES", "text/csv")
    capture_json_content_types: str = env(
        "INFERENCE_CAPTURE_JSON_CONTENT_TYPES", "application/json"
    )
    capture_kms_key_id: str | None = env("INFERENCE_CAPTURE_KMS_KEY_ID")
    capture_endpoint: str = env("INFERENCE_CAPTURE_ENDPOINT", "local-endpoint")
    capture_variant: str = env("INFERENCE_CAPTURE_VARIANT", "AllTraffic")
    capture_buffer_mb: int = env("INFERENCE_CAPTURE_BUFFER_MB", 16, 1)
    capture_file_mb: int = env("INFERENCE_CAPTURE_FILE_MB", 8, 1)
    capture_file_seconds: int = env("INFERENCE_CAPTURE_FILE_SECONDS", 60, 1)

    @field_validator("port", "metrics_port")
    @classmethod
    def _tcp_port(cls, port: int) -> int:
        if port > MAX_PORT:
            raise ValueError(f"must be a TCP port (1-{MAX_PORT}), got {port}")
        return port

    @field_validator("body_timeout")
    @classmethod
    def _within_invocation(cls, seconds: int) -> int:
        if seconds > INVOCATION_LIMIT_SECONDS:
            raise ValueError(
                f"must be at most {INVOCATION_LIMIT_SECONDS} (SageMaker's invocation limit in "
                f"seconds), got {seconds}"
            )
        return seconds

    @field_validator("capture_destination")
    @classmethod
    def _s3_uri(cls, uri: str | None) -> str | None:
        if uri is not None:
            split_s3_uri(uri)  # its ValueError names what is wrong
        return uri

    @model_validator(mode="after")
    def _ports_differ(self) -> Settings:
        if self.metrics_port == self.port:
            raise StartupError(
                f"INFERENCE_METRICS_PORT={self.metrics_port} is the serving port "
                "(SAGEMAKER_BIND_TO_PORT): choose another, or 0 for no metrics"
            )
        return self

    @field_validator("log_level", "env_policy", "capture_mode")
    @classmethod
    def _one_of(cls, value: str, info: Any) -> str:
        allowed = {"log_level": LOG_LEVELS, "env_policy": POLICIES, "capture_mode": MODES}[
            info.field_name
        ]
        if value.lower() not in allowed:
            choices = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
            raise ValueError(f"must be {choices}, got {value.lower()!r}")
        return value.lower()

    @property
    def limits(self) -> Limits:
        """The INFERENCE_MAX_* limits, as the payload parser takes them."""
        return Limits(self.max_rows, self.max_columns, self.max_values, self.max_depth)

    @property
    def max_payload_bytes(self) -> int | None:
        """The largest accepted request body; None when the limit is off (0)."""
        return self.max_payload_mb * MEBIBYTE if self.max_payload_mb else None

    @property
    def capture(self) -> CaptureConfig | None:
        """The data capture settings; None when INFERENCE_CAPTURE_DESTINATION is unset."""
        if not self.capture_destination:
            return None
        return CaptureConfig(
            destination=self.capture_destination,
            endpoint=self.capture_endpoint,
            variant=self.capture_variant,
            sampling_percentage=self.capture_sampling_percentage,
            mode=self.capture_mode,
            csv_content_types=_types(self.capture_csv_content_types),
            json_content_types=_types(self.capture_json_content_types),
            kms_key_id=self.capture_kms_key_id,
            buffer_bytes=self.capture_buffer_mb * MEBIBYTE,
            file_bytes=self.capture_file_mb * MEBIBYTE,
            file_seconds=float(self.capture_file_seconds),
        )


def _types(listed: str) -> tuple[str, ...]:
    """A comma-separated list of content types."""
    return tuple(part.strip() for part in listed.split(",") if part.strip())


def load_settings(given: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting (os.environ, or only `given`); StartupError names the
    first bad one."""
    return load(Settings, given, error=StartupError)
