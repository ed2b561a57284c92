"""Settings of a training job: the only module of the image that reads the environment.

SageMaker's training contract sets TRAINING_JOB_NAME and AWS_REGION in the container, and
SAGEMAKER_PROGRAM where a framework estimator names the user's entry point
(sagemaker_training.params.USER_PROGRAM_ENV); the hyperparameters tracking_uri and
experiment_name win over MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, TypeVar

from pydantic import AliasChoices, SecretStr

from mlstack.core.settings import Settings as BaseSettings
from mlstack.core.settings import env, load
from mlstack.training.errors import TrainingError
from mlstack.training.hyperparameters import Hyperparameters

DEFAULT_TRACKING_WAIT_TIMEOUT = 20.0
SECONDS = "must be a number of seconds above 0, got {input!r}"
E = TypeVar("E", bound="EntrySettings")


class EntrySettings(BaseSettings):
    """What decides which job runs: the built-in one, or the user's script (script mode)."""

    program: str | None = env("SAGEMAKER_PROGRAM")


class Settings(EntrySettings):
    """Where to track the job, and what SageMaker tells the container about it."""

    # The one float: its wording says what the number is.
    WORDING: ClassVar[Mapping[str, str]] = {
        "float_parsing": SECONDS,
        "greater_than": SECONDS,
        "finite_number": SECONDS,
    }

    tracking_uri: str | None = env("MLFLOW_TRACKING_URI")
    experiment_name: str | None = env("MLFLOW_EXPERIMENT_NAME")
    tracking_wait_timeout: float = env(
        "TRACKING_WAIT_TIMEOUT", DEFAULT_TRACKING_WAIT_TIMEOUT, gt=0, allow_inf_nan=False
    )
    job_name: str | None = env("TRAINING_JOB_NAME")
    region: str | None = env(AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    # sagemaker_training.modules.CA_REPOSITORY_ARN_ENV: pip installs from CodeArtifact.
    codeartifact_repository: str | None = env("CA_REPOSITORY_ARN")
    # MLflow's own client variables (mlflow.environment_variables), for script mode's REST
    # calls; the script's MLflow client reads them itself.
    tracking_username: str | None = env("MLFLOW_TRACKING_USERNAME")
    tracking_password: SecretStr | None = env("MLFLOW_TRACKING_PASSWORD")
    tracking_token: SecretStr | None = env("MLFLOW_TRACKING_TOKEN")
    tracking_insecure_tls: bool = env("MLFLOW_TRACKING_INSECURE_TLS", False)
    tracking_server_cert_path: str | None = env("MLFLOW_TRACKING_SERVER_CERT_PATH")

    @property
    def source_name(self) -> str:
        """The run's mlflow.source.name: the job's console page when on SageMaker."""
        if self.job_name and self.region:
            return (
                f"https://{self.region}.console.aws.amazon.com/sagemaker/home"
                f"?region={self.region}#/jobs/{self.job_name}"
            )
        return self.job_name or "mlstack-training"

    def for_job(self, hyperparameters: Hyperparameters) -> Settings:
        """These settings with the tracking_uri / experiment_name hyperparameters winning."""
        return self.model_copy(
            update={
                "tracking_uri": hyperparameters.tracking_uri or self.tracking_uri,
                "experiment_name": hyperparameters.experiment_name or self.experiment_name,
            }
        )


def read_settings(given: Mapping[str, str] | None = None, kind: type[E] = Settings) -> E:
    """Read and check the settings (os.environ, or only `given`); TrainingError names the
    first bad one."""
    return load(kind, given, error=TrainingError)


def load_settings(
    hyperparameters: Hyperparameters, env: Mapping[str, str] | None = None
) -> Settings:
    """The built-in job's settings: the environment's, with its hyperparameters winning."""
    return read_settings(env).for_job(hyperparameters)
