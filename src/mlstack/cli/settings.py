"""Settings of the `mlstack` command: the only place in the CLI that reads the environment
(and `.env`).

One class per component, on the shared base (mlstack.core.settings), each field named after
its environment variable (upper-cased), every one of them in the configuration table:

- `LocalSettings`: the local stack and its loop (`mlstack local ...`), read from the
  environment, then the stack's `.env`;
- `AwsSettings`: AWS and SageMaker local mode (`mlstack aws ...`), the same way;
- `ModelImageSettings`: `mlstack build-model-image`;
- `BuildSettings`: `mlstack build`.

Empty values count as unset (the default applies), values are stripped, and a bad value
becomes one line naming the variable, or the option when one gave it (`SettingsError`).
Command-line options override settings: the CLI passes them as keyword arguments. A
variable in the environment or the env file that mlstack does not know but that is close
to one it does (N_ESTIMATOR for N_ESTIMATORS) is a mistake said in one line, not ignored.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from mlstack import ROOT, version
from mlstack.cli.errors import CliError
from mlstack.cli.tuning import DEFAULT_MAX_JOBS, DEFAULT_MAX_PARALLEL_JOBS
from mlstack.core.errors import MlstackError
from mlstack.core.settings import Settings as CoreSettings
from mlstack.core.settings import load as load_settings
from mlstack.core.settings import variables

DEFAULT_ENV_FILE = ".env"
WholeNumber = Annotated[int, Field(ge=1)]
Port = Annotated[int, Field(ge=1, le=65535)]
# What the Makefile reads besides the settings (docs/configuration.md): known names too.
MAKEFILE_VARIABLES = ("BACKUP", "BACKUP_ROOT", "CONFIRM", "CSV", "DATASET", "ENV_FILE")
MAKEFILE_VARIABLES += ("MODEL_IMAGE", "UPGRADE")
# The settings classes of the images: their variables may sit in the stack's .env too.
IMAGE_SETTINGS_MODULES = ("mlstack.tracking.config", "mlstack.training.config")
IMAGE_SETTINGS_MODULES += ("mlstack.serving.config",)
# Other tools' namespaces, whose many variables are theirs to check.
FOREIGN_PREFIXES = ("AWS_", "SAGEMAKER_", "DOCKER_", "COMPOSE_", "BUILDKIT_", "GIT_", "PIP_")
CLOSE = 0.85  # difflib's ratio from which an unknown name is taken for a misspelling
NAME = re.compile(r"^[A-Z][A-Z0-9_]{3,}$")
# How an image's settings field names its variable(s), as the source writes it.
IMAGE_VARIABLE = re.compile(
    r'(?:env\(|validation_alias=)\s*(?:"[A-Z][A-Z0-9_]+"|AliasChoices\([^)]*\))'
)
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # compose's rule for a project name


class SettingsError(CliError):
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

    None overrides are dropped, so an option not given falls back to the settings. A bad
    value names the option that gave it, else its variable; a misspelt variable is an error."""
    check_names(os.environ, "")
    if env_file is not None and Path(env_file).is_file():
        check_names(env_file_values(Path(env_file)), f" in {env_file}")
    given = {name for name, value in overrides.items() if value is not None}
    return load_settings(
        cls,
        error=SettingsError,
        init={"_env_file": env_file},
        names=option_names(given),
        **overrides,
    )


def option_names(fields: Iterable[str]) -> dict[str, str]:
    """field -> the option of the running command (or its groups) that sets it."""
    wanted, found = set(fields), {}
    ctx = click.get_current_context(silent=True)
    while ctx is not None:
        for param in ctx.command.params:
            if isinstance(param, click.Option) and param.name in wanted:
                found.setdefault(param.name, param.opts[0])
        ctx = ctx.parent
    return found


def env_file_values(path: Path) -> dict[str, str]:
    """KEY=value lines of an env file (comments and blanks skipped, `export ` allowed)."""
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        key, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            values[key.strip()] = value.strip()
    return values


@cache
def known_variables() -> frozenset[str]:
    """Every variable a part of mlstack reads: the settings classes (the CLI's and the
    images'), the Makefile's own, compose's, .env.example's, and MLflow's client's."""
    names: set[str] = set(MAKEFILE_VARIABLES)
    for module_name in IMAGE_SETTINGS_MODULES:
        names |= image_variables(module_name)
    for cls in ALL_SETTINGS:
        names |= variables(cls)
    texts = [path.read_text() for path in (ROOT / "compose").glob("*.y*ml")]
    names |= {found for text in texts for found in re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text)}
    example = ROOT / ".env.example"
    if example.is_file():
        names |= set(env_file_values(example))
    names |= mlflow_variables()
    return frozenset(names)


def image_variables(module_name: str) -> set[str]:
    """The variables an image's settings module reads, from its source: its fields name them
    (`env("NAME")`, `env(AliasChoices("A", "B"))`, `validation_alias="NAME"`); importing the
    module would cost every command its dependencies (SQLAlchemy for the tracking server)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return set()
    source = Path(spec.origin).read_text()
    found = set()
    for match in IMAGE_VARIABLE.finditer(source):
        found |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', match.group(0)))
    return found


def mlflow_variables() -> set[str]:
    """The MLFLOW_* variables MLflow's client reads, from its source (importing mlflow to
    list them would cost every command a second)."""
    spec = importlib.util.find_spec("mlflow")
    if spec is None or not spec.submodule_search_locations:
        return set()
    source = Path(next(iter(spec.submodule_search_locations))) / "environment_variables.py"
    text = source.read_text() if source.is_file() else ""
    return set(re.findall(r'"(MLFLOW_[A-Z0-9_]+)"', text))


def misspelt(name: str) -> str | None:
    """The known variable that name looks like a misspelling of, or None."""
    known = known_variables()
    if name in known or not NAME.match(name) or name.startswith(FOREIGN_PREFIXES):
        return None
    close = difflib.get_close_matches(name, known, n=1, cutoff=CLOSE)
    return close[0] if close else None


def check_names(values: Mapping[str, str], where: str) -> None:
    """Refuse a variable that is not mlstack's but looks like one of its (a typo that would
    otherwise be ignored, the default silently used)."""
    for name in sorted(values):
        meant = misspelt(name)
        if meant is not None:
            raise SettingsError(
                f"{name}{where} is not one of mlstack's settings: did you mean {meant}? "
                f"(rename it{' there' if where else ''}, or unset it)"
            )


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
    # HPO_JOBS / HPO_PARALLEL: the same, as the Makefile's command line names them.
    tuning_max_jobs: WholeNumber = Field(
        DEFAULT_MAX_JOBS, validation_alias=AliasChoices("TUNING_MAX_JOBS", "HPO_JOBS")
    )
    tuning_max_parallel_jobs: WholeNumber = Field(
        DEFAULT_MAX_PARALLEL_JOBS,
        validation_alias=AliasChoices("TUNING_MAX_PARALLEL_JOBS", "HPO_PARALLEL"),
    )
    training_image: str = ""
    inference_image: str = ""
    mlflow_tracking_username: str = ""
    mlflow_tracking_password: str = ""

    @property
    def training_image_tag(self) -> str:
        """TRAINING_IMAGE, else the training image `make build` tags."""
        return self.training_image or f"mlstack/training:{version()}"

    @property
    def inference_image_tag(self) -> str:
        """INFERENCE_IMAGE, else the inference image `make build` tags."""
        return self.inference_image or f"mlstack/inference:{version()}"

    def tracking_credentials(self) -> dict[str, str]:
        """MLFLOW_TRACKING_USERNAME / _PASSWORD when set: what a job's MLflow client reads
        for a tracking server with auth on (given to it as environment, never as argument)."""
        values = {
            "MLFLOW_TRACKING_USERNAME": self.mlflow_tracking_username,
            "MLFLOW_TRACKING_PASSWORD": self.mlflow_tracking_password,
        }
        return {name: value for name, value in values.items() if value}


class LocalSettings(LoopSettings):
    """The local stack (compose project, ports, databases, bucket) and its loop.

    A stack is one named thing: its name and ports (`IDENTITY`) are written into its env
    file when it is made, so every later command reads them from there."""

    compose_project: str = "mlstack"
    mlflow_port: Port = 5000
    minio_console_port: Port = 9001
    serve_port: Port = 8080
    minio_port: Port = 9000
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
    tuning_seed: int | None = None
    mlflow_auth_enabled: bool = True
    mlflow_auth_admin_username: str = "admin"
    mlflow_auth_admin_password: str = ""

    @field_validator("compose_project")
    @classmethod
    def _project_name(cls, name: str) -> str:
        if not PROJECT_NAME.match(name):
            raise ValueError(
                "must be lower-case letters, digits, '-' or '_' (a compose project's name), "
                f"got {name!r}"
            )
        return name

    def identity(self) -> dict[str, str]:
        """The stack's name and ports, as its env file records them."""
        return {
            "COMPOSE_PROJECT": self.compose_project,
            "MLFLOW_PORT": str(self.mlflow_port),
            "MINIO_CONSOLE_PORT": str(self.minio_console_port),
            "SERVE_PORT": str(self.serve_port),
            "MINIO_PORT": str(self.minio_port),
        }

    @property
    def endpoint(self) -> str:
        """The local endpoint (`mlstack local serve`) as this machine reaches it."""
        return f"http://127.0.0.1:{self.serve_port}"

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
        """The loop's MLflow credentials: the stack's admin (its env file) when access control
        is on, else MLFLOW_TRACKING_USERNAME / _PASSWORD as set; a token too when set."""
        login = super().tracking_credentials()
        if self.mlflow_auth_enabled and self.mlflow_auth_admin_password:
            login = self.admin_login()
        token = {"MLFLOW_TRACKING_TOKEN": self.mlflow_tracking_token}
        return {**login, **{k: v for k, v in token.items() if v}}


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


class MonitorSettings(Settings):
    """`mlstack monitor`: the model, where its endpoint's captures are, the tracking server;
    by default those of the local stack."""

    mlflow_tracking_uri: str = ""
    mlflow_port: Port = 5000
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
    """`mlstack build-model-image`: where models:/ and runs:/ URIs resolve, and the model."""

    mlflow_tracking_uri: str = ""
    model_name: str = "diabetes-rf"


class BuildSettings(Settings):
    """`mlstack build`: the images' Python base (else .images.env's, else the public one)."""

    python_base_image: str = ""


ALL_SETTINGS: tuple[type[Settings], ...] = (
    LocalSettings,
    AwsSettings,
    ModelImageSettings,
    BuildSettings,
    MonitorSettings,
)


def stack_tracking(env_file: str | Path, tracking_uri: str) -> str:
    """tracking_uri, else the local stack's tracking server (when its env file exists), whose
    admin MLflow's client in this process then logs in as; "" when there is neither."""
    if tracking_uri or not Path(env_file).is_file():
        return tracking_uri
    stack = load(LocalSettings, env_file)
    export_for_libraries(stack.tracking_credentials())
    return stack.tracking_uri


def export_for_libraries(values: Mapping[str, str]) -> None:
    """Write variables that a library in this process reads (the SageMaker SDK's, MLflow's):
    the one place the CLI writes its own environment."""
    for name, value in values.items():
        os.environ[name] = value


def default_for_libraries(values: Mapping[str, str]) -> None:
    """export_for_libraries for the variables the user has not set."""
    export_for_libraries({k: v for k, v in values.items() if k not in os.environ})


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment plus extra: what a child process (docker compose) gets."""
    return {**os.environ, **extra}
