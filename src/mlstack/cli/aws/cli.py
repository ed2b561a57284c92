"""`mlstack aws ...`: push, deploy-fargate, deploy-endpoint, invoke, tune, sagemaker-local.

Each command reads `AwsSettings` (the environment, then the env file; docs/configuration.md
lists every variable); its options override them. Failures: one line
"mlstack: error: ..." and exit status 1 (mlstack.cli.errors).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from mlstack import ROOT
from mlstack.cli.aws import deploy_endpoint, deploy_fargate, invoke, push, sagemaker_local, tune
from mlstack.cli.options import env_file_of, setting_option, shared_options
from mlstack.cli.settings import AwsSettings, load, stack_tracking


def run(ctx: click.Context, main: Callable[..., None], overrides: dict, *args: object) -> None:
    """Load the settings (options win), then run the command with them."""
    main(load(AwsSettings, env_file_of(ctx), **overrides), *args)


def option(field: str, help_text: str, *decls: str, **kwargs: object) -> Callable:
    return setting_option(AwsSettings, field, help_text, *decls, **kwargs)


@click.group()
def aws() -> None:
    """From laptop to AWS: ECR, Fargate, SageMaker endpoints and tuning; SageMaker local mode.

    AWS_PROFILE / AWS_REGION (or AWS_* credentials) choose the account; AWS_ENDPOINT_URL,
    when set, receives every AWS call (the tests point it at moto)."""


@aws.command("push")
@shared_options()
@click.argument("names", nargs=-1)
@click.option(
    "--images-dir",
    type=click.Path(path_type=Path),
    default=ROOT / "images",
    help="where NAME/Dockerfile live",
)
@click.option("--model-image", help="push this locally built model image (name:tag) instead")
@option("push_allow_dirty", "push uncommitted sources under a dirty tag", type=bool)
@click.pass_context
def push_command(
    ctx: click.Context, names: tuple[str, ...], images_dir: Path, model_image: str | None, **o
) -> None:
    """Build NAMES (default: tracking-server training inference) for linux/amd64, push them to
    ECR, print their URIs; or push one model image as it is."""
    run(ctx, push.main, o, list(names), images_dir, model_image)


@aws.command("deploy-fargate")
@shared_options()
@option("stack_name", "CloudFormation stack")
@option("vpc_id", "the VPC (required)")
@option("lb_subnet_ids", "load balancer subnets, comma-separated (required)")
@option("private_subnet_ids", "the tasks' and database's subnets (required)")
@option("lb_scheme", "internal or internet-facing")
@option("certificate_arn", "ACM certificate (HTTPS)")
@click.pass_context
def deploy_fargate_command(ctx: click.Context, **o) -> None:
    """Create or update the Fargate tracking server (CloudFormation); print its URL."""
    run(ctx, deploy_fargate.main, o)


@aws.command("deploy-endpoint")
@shared_options()
@option("mlflow_tracking_uri", "the tracking server (required)")
@option("model_name", "registered model")
@option("model_alias", "alias to deploy")
@option("sagemaker_role_arn", "execution role (required)")
@option("model_s3_uri", "where model.tar.gz goes (required without --model-image-uri)")
@option("model_image_uri", "a pushed model image: nothing uploaded")
@option("endpoint_name", "endpoint [default mlstack-MODEL_NAME]")
@option("capture_destination", "Data Capture to [default MODEL_S3_URI's bucket/data-capture]")
@option("capture_sampling_percentage", "requests captured, 0-100", type=int)
@click.pass_context
def deploy_endpoint_command(ctx: click.Context, **o) -> None:
    """Deploy MODEL_NAME@MODEL_ALIAS to a SageMaker real-time endpoint; print its name."""
    run(ctx, deploy_endpoint.main, o)


@aws.command("invoke")
@shared_options()
@option("endpoint_name", "endpoint [default mlstack-MODEL_NAME]")
@option("model_name", "registered model (names the endpoint)")
@option("test_csv", "the test rows [default DATA_DIR/test/test.csv]")
@click.pass_context
def invoke_command(ctx: click.Context, **o) -> None:
    """Send the reference's request (the first test row) to the endpoint; print the answer."""
    run(ctx, invoke.main, o)


@aws.command("tune")
@shared_options()
@option("mlflow_tracking_uri", "the tracking server from here (required)")
@option("experiment_name", "MLflow experiment")
@option("data_s3_uri", "s3:// channels train/ and test/ (required)")
@option("output_s3_uri", "s3:// output (required)")
@option("tuning_max_jobs", "jobs in all", "--jobs", type=int)
@option("tuning_max_parallel_jobs", "at a time", "--parallel", type=int)
@option("source_dir", "your training script's directory")
@option("entry_point", "the script, in --source-dir")
@click.pass_context
def tune_command(ctx: click.Context, **o) -> None:
    """SageMaker hyperparameter tuning, each job under one MLflow parent run; print the best."""
    run(ctx, tune.main, o)


@aws.command("sagemaker-local")
@shared_options()
@option(
    "mlflow_tracking_uri", "the tracking server from here (default: the local stack's, ENV_FILE)"
)
@option("experiment_name", "MLflow experiment")
@option("data_dir", "train/test channels", type=Path)
@option("n_estimators", "trees", type=int)
@option("min_samples_leaf", "smallest leaf", type=int)
@option("source_dir", "your training script's directory")
@option("entry_point", "the script, in --source-dir")
@click.pass_context
def sagemaker_local_command(ctx: click.Context, **o) -> None:
    """SageMaker SDK local mode against the local stack: train, deploy, predict (no account)."""
    env_file = env_file_of(ctx)
    uri = stack_tracking(env_file, load(AwsSettings, env_file, **o).mlflow_tracking_uri)
    # Read again: the stack's admin is in the environment now, for the training container.
    sagemaker_local.main(load(AwsSettings, env_file, **{**o, "mlflow_tracking_uri": uri or None}))
