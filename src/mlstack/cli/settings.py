"""Settings of the `mlstack` command: the only place in the CLI that reads the environment
(and `.env`).

One class per component, on the shared base (mlstack.core.settings), each field named after
its environment variable (upper-cased), every one of them in the configuration table:

- `LocalSettings`: the local stack and its loop (`mlstack local ...`), read from the
  environment, then the stack's `.env`;
- `AwsSettings`: AWS and SageMaker local mode (`mlstack aws ...`), the same way;
- `ModelImageSettings`: `mlstack build-model-image`.

Empty values count as unset (the default applies), values are stripped, and a bad value
becomes one line naming the variable (`SettingsError`). Command-line options override
settings: the CLI passes them as keyword arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from mlstack import ROOT
from mlstack.cli.tuning import DEFAULT_MAX_JOBS, DEFAULT_MAX_PARALLEL_JOBS
from mlstack.core.errors import MlstackError
from mlstack.core.settings import Settings as CoreSettings
from mlstack.core.settings import load as load_settings

DEFAULT_ENV_FILE = ".env"
WholeNumber = Annotated[int, Field(ge=1)]


class SettingsError(MlstackError):
    """A setting is missing or wrong; the message names it and says how to fix it."""


class Settings(CoreSettings):
    """What the command's settings share: read from the environment, then the stack's .env;
    a field is read from its own name, upper-cased (EXPERIMENT_NAME for experiment_name)."""

    model_config = SettingsConfigDict(
        env_file=DEFAULT_ENV_FILE,
        env_file_encoding="utf-8",
        case_sensitive=False,
        frozen=False,
    )

    def require(self, field: str) -> Any:
        """A setting that this command cannot do without; one line naming it when unset."""
        try:
            return super().require(field)
        except MlstackError as error:
            raise SettingsError(str(error)) from None


S = TypeVar("S", bound=Settings)


def load(cls: type[S], env_file: str | Path | None = DEFAULT_ENV_FILE, **overrides: Any) -> S:
    """The settings from the environment, then env_file; overrides (CLI options) win.

    None overrides are dropped, so an option not given falls back to the settings."""
    return load_settings(cls, error=SettingsError, init={"_env_file": env_file}, **overrides)


class LoopSettings(Settings):
    """What the local loop and the AWS workflows share: the experiment, the model, the data,
    the built-in model's hyperparameters or the user's script, MLflow's credentials."""

    experiment_name: str = "diabetes-progression"
    model_name: str = "diabetes-rf"
    data_dir: Path = ROOT / "data" / "diabetes"
    source_dir: str = ""
    entry_point: str = ""
    n_estimators: WholeNumber = 100
    min_samples_leaf: WholeNumber = 3
    registered_model_name: str = ""
    tuning_max_jobs: WholeNumber = DEFAULT_MAX_JOBS
    tuning_max_parallel_jobs: WholeNumber = DEFAULT_MAX_PARALLEL_JOBS
    mlflow_tracking_username: str = ""
    mlflow_tracking_password: str = ""

    def tracking_credentials(self) -> dict[str, str]:
        """MLFLOW_TRACKING_USERNAME / _PASSWORD when set: what a job's MLflow client reads
        for a tracking server with auth on (given to it as environment, never as argument)."""
        values = {
            "MLFLOW_TRACKING_USERNAME": self.mlflow_tracking_username,
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_tracking_password,
        }
        return {name: value for name, value in values.items() if value}


class LocalSettings(LoopSettings):
    """The local stack (compose project, ports, databases, bucket) and its loop."""

    compose_project: str = "mlstack"
    mlflow_port: WholeNumber = 5000
    minio_console_port: WholeNumber = 9001
    minio_port: WholeNumber = 9000
    capture_destination: str = ""
    mlflow_tracking_token: str = ""
    db_name: str = "mlflow"
    db_user: str = "mlflow"
    db_password: str = ""
    minio_mlflow_user: str = "mlflow-artifacts"
    minio_mlflow_password: str = ""
    mlflow_auth_db_name: str = "mlflow_auth"
    artifacts_destination: str = "s3://mlflow/artifacts"
    random_state: int = 42
    mlflow_auth_enabled: bool = True
    mlflow_auth_admin_username: str = "admin"
    mlflow_auth_admin_password: str = ""

    @property
    def network(self) -> str:
        """The compose project's default network, where jobs and the endpoint run."""
        return f"{self.compose_project}_default"

    @property
    def endpoint_container(self) -> str:
        """The local endpoint's container (`mlstack local serve`), removed by `down`."""
        return f"{self.compose_project}-inference"

    @property
    def tracking_uri(self) -> str:
        """The tracking server as this machine reaches it."""
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def endpoint_name(self) -> str:
        """The local endpoint's name in its captures, as deploy-endpoint names the AWS one."""
        return f"mlstack-{self.model_name}"

    @property
    def capture_uri(self) -> str:
        """CAPTURE_DESTINATION, else data-capture/ in the stack's artifact bucket."""
        return self.capture_destination or local_capture_destination(self.artifacts_destination)

    def minio_s3(self) -> Any:
        """An S3 client on the stack's MinIO, from this machine, as the artifact bucket's user."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.minio_port}",
            aws_access_key_id=self.minio_mlflow_user,
            aws_secret_access_key=self.require("minio_mlflow_password"),
            region_name="us-east-1",
        )

    def capture_environment(self) -> dict[str, str]:
        """The local endpoint's data capture into the stack's MinIO, as the artifact bucket's
        user (the bucket job's policy allows it that bucket only)."""
        return {
            "INFERENCE_CAPTURE_DESTINATION": self.capture_uri,
            "INFERENCE_CAPTURE_ENDPOINT": self.endpoint_name,
            "INFERENCE_CAPTURE_FILE_SECONDS": "2",
            "AWS_ENDPOINT_URL_S3": "http://minio:9000",
            "AWS_ACCESS_KEY_ID": self.minio_mlflow_user,
            "AWS_SECRET_ACCESS_KEY": self.require("minio_mlflow_password"),
        }

    def admin_login(self) -> dict[str, str]:
        """MLflow's credential variables for the stack's admin (.env), when auth is on."""
        if not self.mlflow_auth_enabled:
            return {}
        return {
            "MLFLOW_TRACKING_USERNAME": self.mlflow_auth_admin_username,
            "MLFLOW_TRACKING_PASSWORD": self.require("mlflow_auth_admin_password"),
        }

    def tracking_credentials(self) -> dict[str, str]:
        """The loop's MLflow credentials, a token too when set."""
        token = {"MLFLOW_TRACKING_TOKEN": self.mlflow_tracking_token}
        return {**super().tracking_credentials(), **{k: v for k, v in token.items() if v}}


class AwsSettings(LoopSettings):
    """AWS (push, deploy-fargate, deploy-endpoint, invoke, tune) and SageMaker local mode.

    Required ones are checked by the command that needs them (`require`)."""

    aws_profile: str = ""
    aws_region: str = Field("", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    mlflow_tracking_uri: str = ""
    # push
    python_base_image: str = ""
    push_allow_dirty: bool = False
    ecr_registry_override: str = ""
    # deploy-fargate (template parameters: unset ones keep the template's defaults)
    stack_name: str = "mlstack-tracking"
    tracking_server_image_uri: str = ""
    vpc_id: str = ""
    lb_subnet_ids: str = ""
    lb_subnet_cidrs: str = ""
    private_subnet_ids: str = ""
    lb_scheme: str = ""
    client_cidr: str = ""
    certificate_arn: str = ""
    domain_name: str = ""
    db_multi_az: str = ""
    db_deletion_protection: str = ""
    stack_parameters: str = ""
    # deploy-endpoint, invoke
    model_alias: str = "champion"
    sagemaker_role_arn: str = ""
    model_s3_uri: str = ""
    model_image_uri: str = ""
    inference_image_uri: str = ""
    endpoint_name: str = ""
    sagemaker_instance_type: str = "ml.m5.large"
    sagemaker_instance_count: WholeNumber = 1
    # deploy-endpoint's Data Capture (DataCaptureConfig)
    capture_destination: str = ""
    capture_sampling_percentage: Annotated[int, Field(ge=0, le=100)] = 100
    test_csv: str = ""
    target: str = ""
    features: str = ""
    # tune
    training_tracking_uri: str = ""
    training_image_uri: str = ""
    data_s3_uri: str = ""
    output_s3_uri: str = ""
    tuning_job_name: str = ""
    tuning_poll_seconds: WholeNumber = 60
    sagemaker_subnets: str = ""
    sagemaker_security_group_ids: str = ""
    random_state: str = ""
    # sagemaker-local
    sagemaker_local_tracking_uri: str = ""
    sagemaker_local_output: Path = ROOT / "build" / "sagemaker-local"
    training_image: str = ""
    inference_image: str = ""


class MonitorSettings(Settings):
    """`mlstack monitor`: the model, where its endpoint's captures are, the tracking server;
    by default those of the local stack."""

    mlflow_tracking_uri: str = ""
    mlflow_port: WholeNumber = 5000
    model_name: str = "diabetes-rf"
    model_alias: str = "champion"
    capture_destination: str = ""
    artifacts_destination: str = "s3://mlflow/artifacts"
    endpoint_name: str = ""
    aws_endpoint_url_s3: str = ""

    @property
    def tracking_uri(self) -> str:
        """MLFLOW_TRACKING_URI, else the local stack's server."""
        return self.mlflow_tracking_uri or f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def capture_uri(self) -> str:
        """CAPTURE_DESTINATION, else the local stack's (in its artifact bucket)."""
        return self.capture_destination or local_capture_destination(self.artifacts_destination)


def local_capture_destination(artifacts_destination: str) -> str:
    """The local endpoint's capture destination: data-capture/ in the artifact bucket (the
    bucket the stack's MinIO user may write)."""
    bucket = artifacts_destination.removeprefix("s3://").split("/", 1)[0]
    return f"s3://{bucket}/data-capture"


class ModelImageSettings(Settings):
    """`mlstack build-model-image`: where models:/ and runs:/ URIs resolve."""

    mlflow_tracking_uri: str = ""


ALL_SETTINGS: tuple[type[Settings], ...] = (
    LocalSettings,
    AwsSettings,
    ModelImageSettings,
    MonitorSettings,
)


def export_for_libraries(values: Mapping[str, str]) -> None:
    """Write variables that a library in this process reads (the SageMaker SDK's, MLflow's):
    the one place the CLI writes its own environment."""
    for name, value in values.items():
        os.environ[name] = value


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment plus extra: what a child process (docker compose) gets."""
    return {**os.environ, **extra}
