"""Settings of a training job: the only module of the image that reads the environment.

SageMaker's training contract sets TRAINING_JOB_NAME and AWS_REGION in the container, and
SAGEMAKER_PROGRAM where a framework estimator names the user's entry point
(sagemaker_training.params.USER_PROGRAM_ENV); the hyperparameters tracking_uri and
experiment_name win over MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlstack_training.errors import TrainingError
from mlstack_training.hyperparameters import Hyperparameters

DEFAULT_TRACKING_WAIT_TIMEOUT = 20.0
# pydantic's error types in the words this image has always used (one line per variable).
SECONDS = "must be a number of seconds above 0, got {input!r}"
WORDING = {
    "float_parsing": SECONDS,
    "greater_than": SECONDS,
    "finite_number": SECONDS,
    "bool_parsing": "must be true or false, got {input!r}",
}
E = TypeVar("E", bound="EntrySettings")


def _env(name: str | AliasChoices, default: Any = None, **more: Any) -> Any:
    """A field read from the variable `name` (its exact spelling, as the README lists it)."""
    return Field(default, validation_alias=name, **more)


class EntrySettings(BaseSettings):
    """What decides which job runs: the built-in one, or the user's script (script mode)."""

    # Variables are matched by their exact names; unrelated ones are ignored; an empty one is
    # unset, so that AWS_REGION="" falls back to AWS_DEFAULT_REGION as it always has.
    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", frozen=True, env_ignore_empty=True
    )

    program: str | None = _env("SAGEMAKER_PROGRAM")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        """Values are read stripped; an empty one means the default, as it always has."""
        stripped = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
        return {k: v for k, v in stripped.items() if v != ""}


class Settings(EntrySettings):
    """Where to track the job, and what SageMaker tells the container about it."""

    tracking_uri: str | None = _env("MLFLOW_TRACKING_URI")
    experiment_name: str | None = _env("MLFLOW_EXPERIMENT_NAME")
    tracking_wait_timeout: float = _env(
        "TRACKING_WAIT_TIMEOUT", DEFAULT_TRACKING_WAIT_TIMEOUT, gt=0, allow_inf_nan=False
    )
    job_name: str | None = _env("TRAINING_JOB_NAME")
    region: str | None = _env(AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    # sagemaker_training.modules.CA_REPOSITORY_ARN_ENV: pip installs from CodeArtifact.
    codeartifact_repository: str | None = _env("CA_REPOSITORY_ARN")
    # MLflow's own client variables (mlflow.environment_variables), for script mode's REST
    # calls; the script's MLflow client reads them itself.
    tracking_username: str | None = _env("MLFLOW_TRACKING_USERNAME")
    tracking_password: SecretStr | None = _env("MLFLOW_TRACKING_PASSWORD")
    tracking_token: SecretStr | None = _env("MLFLOW_TRACKING_TOKEN")
    tracking_insecure_tls: bool = _env("MLFLOW_TRACKING_INSECURE_TLS", False)
    tracking_server_cert_path: str | None = _env("MLFLOW_TRACKING_SERVER_CERT_PATH")

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


def read_settings(env: Mapping[str, str] | None = None, kind: type[E] = Settings) -> E:
    """Read and check the settings (os.environ, or env); TrainingError names the first bad one."""
    try:
        given = {name: value for name, value in (env or {}).items() if value.strip()}
        return kind() if env is None else kind.model_validate(given)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        text = WORDING.get(first["type"], "{msg}").format(**first, **first.get("ctx", {}))
        raise TrainingError(f"{first['loc'][0]} {text.removeprefix('Value error, ')}") from None


def load_settings(
    hyperparameters: Hyperparameters, env: Mapping[str, str] | None = None
) -> Settings:
    """The built-in job's settings: the environment's, with its hyperparameters winning."""
    return read_settings(env).for_job(hyperparameters)
