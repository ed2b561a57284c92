"""Settings from the environment and the hyperparameters, read in one place."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from mlstack_training.errors import TrainingError
from mlstack_training.hyperparameters import Hyperparameters

DEFAULT_TRACKING_WAIT_TIMEOUT = 20.0


@dataclass(frozen=True)
class Settings:
    """Where to track the job, and what SageMaker tells the container about it."""

    tracking_uri: str | None
    experiment_name: str | None
    tracking_wait_timeout: float
    job_name: str | None
    region: str | None

    @property
    def source_name(self) -> str:
        """The run's mlflow.source.name: the job's console page when on SageMaker."""
        if self.job_name and self.region:
            return (
                f"https://{self.region}.console.aws.amazon.com/sagemaker/home"
                f"?region={self.region}#/jobs/{self.job_name}"
            )
        return self.job_name or "mlstack-training"


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise TrainingError(f"{name} must be a number of seconds above 0, got {raw!r}")
    return value


def load_settings(hyperparameters: Hyperparameters, env: Mapping[str, str]) -> Settings:
    """The tracking_uri / experiment_name hyperparameters win over MLFLOW_TRACKING_URI /
    MLFLOW_EXPERIMENT_NAME; SageMaker sets TRAINING_JOB_NAME and AWS_REGION."""
    return Settings(
        tracking_uri=hyperparameters.tracking_uri
        or env.get("MLFLOW_TRACKING_URI", "").strip()
        or None,
        experiment_name=hyperparameters.experiment_name
        or env.get("MLFLOW_EXPERIMENT_NAME", "").strip()
        or None,
        tracking_wait_timeout=_seconds(env, "TRACKING_WAIT_TIMEOUT", DEFAULT_TRACKING_WAIT_TIMEOUT),
        job_name=env.get("TRAINING_JOB_NAME", "").strip() or None,
        region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip() or None,
    )
