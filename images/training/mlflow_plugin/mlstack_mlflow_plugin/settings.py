"""The training job as SageMaker describes it to the script: read here and nowhere else.

Both ways a script-mode job starts export the same SageMaker variables to the script:
- the image's own entry point (SDK v2 estimators, `mlstack local`, SageMaker with the image's
  entry point) runs sagemaker-training 5.1.4, whose `Environment.to_env_vars` exports
  SM_HPS, SM_CHANNELS, SM_CURRENT_INSTANCE_TYPE, SM_USER_ENTRY_POINT, SM_FRAMEWORK_PARAMS,
  SM_OUTPUT_DATA_DIR and SM_TRAINING_ENV (sagemaker_training/environment.py);
- SDK v3's ModelTrainer with source code replaces the entry point with its own driver
  (`/bin/bash -c ".../sm_drivers/sm_train.sh"`, sagemaker-train 1.27: train/constants.py,
  templates.py), whose container_drivers/scripts/environment.py exports SM_HPS, SM_CHANNELS
  (its own `code` and `sm_drivers` channels included), SM_CURRENT_INSTANCE_TYPE,
  SM_ENTRY_SCRIPT, SM_OUTPUT_DATA_DIR and SM_TRAINING_ENV before it runs the script.
SageMaker itself sets TRAINING_JOB_NAME (and AWS_REGION on AWS) in every training container.

Not a pydantic-settings class, unlike the images' settings: the plugin runs inside the user's
script, whose requirements.txt may replace the image's pydantic (an MLflow 2.x client may
bring 1.x), and it must keep working whatever is installed. It depends on the stdlib alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The script-mode runner's key for the job's runs (mlstack.training.script_mode), so it can
# end the runs a failed script left open. Unset under SDK v3's driver.
JOB_KEY_ENV = "MLSTACK_JOB_KEY"
# ModelTrainer's own channels (sagemaker/train/constants.py: SM_CODE, SM_DRIVERS): the
# source code and the driver, not the job's data.
SDK_CHANNELS = frozenset({"code", "sm_drivers"})
DEFAULT_OUTPUT_DATA_DIR = "/opt/ml/output/data"  # SageMaker's SM_OUTPUT_DATA_DIR


def _json(text: str | None) -> Any:
    """A JSON value the driver exported, or None when absent or malformed."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _text(*values: object) -> str:
    """The first value that is a non-blank string, stripped; else ''."""
    for value in values:
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


@dataclass(frozen=True)
class JobEnvironment:
    """What the plugin knows of the job the script runs in."""

    in_job: bool  # SM_TRAINING_ENV is set: a SageMaker script-mode job runs this script
    hyperparameters: dict[str, Any]
    job_name: str
    instance_type: str
    channels: tuple[str, ...]
    entry_point: str
    region: str
    image: str
    job_key: str
    tracking_uri: str  # MLFLOW_TRACKING_URI as the job was given it
    experiment_name: str  # MLFLOW_EXPERIMENT_NAME likewise
    output_data_dir: str


def read(env: Mapping[str, str] | None = None) -> JobEnvironment:
    """The job from the environment (os.environ, or env); blank or malformed values count as
    unset, so a half-configured environment never breaks the script."""
    env = os.environ if env is None else env
    training = _json(env.get("SM_TRAINING_ENV"))
    in_job = isinstance(training, dict)
    training = training if in_job else {}
    hps = _json(env.get("SM_HPS"))
    if not isinstance(hps, dict):
        hps = training.get("hyperparameters")
    framework = _json(env.get("SM_FRAMEWORK_PARAMS"))
    if not isinstance(framework, dict):
        framework = training.get("additional_framework_parameters") or {}
    channels = _json(env.get("SM_CHANNELS"))
    if not isinstance(channels, list):
        channels = list(training.get("channel_input_dirs") or {})
    return JobEnvironment(
        in_job=in_job,
        hyperparameters=hps if isinstance(hps, dict) else {},
        job_name=_text(
            env.get("TRAINING_JOB_NAME"),
            training.get("job_name"),
            framework.get("sagemaker_job_name") if isinstance(framework, dict) else None,
        ),
        instance_type=_text(
            env.get("SM_CURRENT_INSTANCE_TYPE"), training.get("current_instance_type")
        ),
        channels=tuple(sorted({str(c) for c in channels} - SDK_CHANNELS)),
        entry_point=_text(
            env.get("SM_USER_ENTRY_POINT"),
            env.get("SM_ENTRY_SCRIPT"),
            training.get("user_entry_point"),
        ),
        region=_text(env.get("AWS_REGION"), env.get("AWS_DEFAULT_REGION")),
        image=_text(env.get("MLSTACK_IMAGE")) or "mlstack/training",
        job_key=_text(env.get(JOB_KEY_ENV)),
        tracking_uri=_text(env.get("MLFLOW_TRACKING_URI")),
        experiment_name=_text(env.get("MLFLOW_EXPERIMENT_NAME")),
        output_data_dir=_text(env.get("SM_OUTPUT_DATA_DIR"), training.get("output_data_dir"))
        or DEFAULT_OUTPUT_DATA_DIR,
    )
