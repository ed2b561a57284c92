"""Settings of the training job's runner, read from the environment.

SageMaker's training contract sets TRAINING_JOB_NAME in the container, and SAGEMAKER_PROGRAM
where a framework estimator names the user's entry point
(sagemaker_training.params.USER_PROGRAM_ENV). The job's MLflow variables reach the script's
MLflow client through the image's MLflow plugin (mlstack_mlflow_plugin: hyperparameters
tracking_uri and experiment_name winning over MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME),
which depends on the stdlib alone and reads them itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import SecretStr

from mlstack.core.settings import Settings as BaseSettings
from mlstack.core.settings import env, load
from mlstack.training.errors import TrainingError

DEFAULT_TRACKING_WAIT_TIMEOUT = 20.0
SECONDS = "must be a number of seconds above 0, got {input!r}"


class Settings(BaseSettings):
    """The runner's settings: which script runs, the job's tracking server, and what
    SageMaker tells the container about the job."""

    # The one float: its wording says what the number is.
    WORDING: ClassVar[Mapping[str, str]] = {
        "float_parsing": SECONDS,
        "greater_than": SECONDS,
        "finite_number": SECONDS,
    }

    # The user's entry point; without one the image's built-in script runs.
    program: str | None = env("SAGEMAKER_PROGRAM")
    # The job's MLflow settings as the container is given them (the plugin reads them too,
    # the hyperparameters winning).
    tracking_uri: str | None = env("MLFLOW_TRACKING_URI")
    experiment_name: str | None = env("MLFLOW_EXPERIMENT_NAME")
    tracking_wait_timeout: float = env(
        "TRACKING_WAIT_TIMEOUT", DEFAULT_TRACKING_WAIT_TIMEOUT, gt=0, allow_inf_nan=False
    )
    job_name: str | None = env("TRAINING_JOB_NAME")
    # sagemaker_training.modules.CA_REPOSITORY_ARN_ENV: pip installs from CodeArtifact.
    codeartifact_repository: str | None = env("CA_REPOSITORY_ARN")
    # MLflow's own client variables (mlflow.environment_variables), for script mode's REST
    # calls; the script's MLflow client reads them itself.
    tracking_username: str | None = env("MLFLOW_TRACKING_USERNAME")
    tracking_password: SecretStr | None = env("MLFLOW_TRACKING_PASSWORD")
    tracking_token: SecretStr | None = env("MLFLOW_TRACKING_TOKEN")
    tracking_insecure_tls: bool = env("MLFLOW_TRACKING_INSECURE_TLS", False)
    tracking_server_cert_path: str | None = env("MLFLOW_TRACKING_SERVER_CERT_PATH")


def read_settings(given: Mapping[str, str] | None = None) -> Settings:
    """Read and check the settings (os.environ, or only `given`); TrainingError names the
    first bad one."""
    return load(Settings, given, error=TrainingError)
