"""`mlstack`: one command for the whole loop. The Makefile's targets call it.

mlstack data ...                 train/test channels
mlstack local ...                the local stack's loop, backup, restore
mlstack aws ...                  AWS and SageMaker local mode
mlstack build [NAME ...]         the three images (make build)
mlstack build-model-image ...    an inference image with one model in its own env
mlstack monitor ...              an endpoint's captured traffic against the training data
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from mlstack import version
from mlstack.cli import data, images, model_image
from mlstack.cli.aws.cli import aws
from mlstack.cli.errors import MlstackGroup
from mlstack.cli.local.cli import local
from mlstack.cli.monitor.command import monitor
from mlstack.cli.options import Context, env_file_of, env_file_option, shared_options
from mlstack.cli.settings import (
    DEFAULT_ENV_FILE,
    BuildSettings,
    ModelImageSettings,
    load,
    stack_tracking,
)


@click.group(
    "mlstack",
    cls=MlstackGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(version(), prog_name="mlstack")
@env_file_option(default=DEFAULT_ENV_FILE)
@click.pass_context
def cli(ctx: click.Context, env_file: Path) -> None:
    """Run the ML lifecycle with MLflow and SageMaker, on a laptop and on AWS.

    Every option falls back to its environment variable, then to the stack's env file
    (--env-file, ENV_FILE, .env); docs/configuration.md lists them all. Options go before or
    after the command. `make help` shows the same workflows as make targets.
    """
    quiet_foreign_header_providers()
    ctx.obj = Context(env_file=env_file)


def quiet_foreign_header_providers() -> None:
    """Keep MLflow's warning about a failing request-header plugin off the user's screen.

    The SageMaker SDK v3 installs sagemaker-mlflow, whose header provider is always active
    and raises on any tracking URI that is not a SageMaker ARN; MLflow then logs a warning
    on every request, which would break the one-line error and bury the output."""
    logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)


cli.add_command(local)
cli.add_command(aws)
cli.add_command(data.command)
cli.add_command(monitor)


@cli.command("build")
@shared_options()
@click.argument("names", nargs=-1, type=click.Choice(images.IMAGES))
@click.option("--verbose", is_flag=True, help="print the builds' logs as they go")
@click.pass_context
def build_command(ctx: click.Context, names: tuple[str, ...], verbose: bool) -> None:
    """Build the images (NAMES, default all three) as mlstack/NAME:VERSION and :latest, on
    PYTHON_BASE_IMAGE (else .images.env's stand-in, else python:3.11-slim)."""
    settings = load(BuildSettings, env_file_of(ctx))
    images.build_for_stack(names, images.python_base_image(settings.python_base_image), verbose)


@cli.command("build-model-image")
@shared_options()
@click.option(
    "--model-uri",
    help="a model dir, models:/NAME@alias or runs:/... [default models:/MODEL_NAME@champion]",
)
@click.option(
    "--image", help="name:tag of the image to build [default mlstack/model-MODEL_NAME:VERSION]"
)
@click.option("--base", help="the inference image [default mlstack/inference:VERSION]")
@click.option(
    "--mlflow-tracking-uri",
    help="resolves models:/ and runs:/ [env MLFLOW_TRACKING_URI; default the local stack's]",
)
@click.pass_context
def build_model_image(
    ctx: click.Context,
    model_uri: str | None,
    image: str | None,
    base: str | None,
    mlflow_tracking_uri: str | None,
) -> None:
    """An image FROM mlstack/inference with one model and a venv of exactly its requirements.

    models:/ and runs:/ URIs resolve at MLFLOW_TRACKING_URI, else at the local stack's server."""
    env_file = env_file_of(ctx)
    settings = load(ModelImageSettings, env_file, mlflow_tracking_uri=mlflow_tracking_uri)
    tracking_uri = stack_tracking(env_file, settings.mlflow_tracking_uri)
    model_uri = model_uri or f"models:/{settings.model_name}@champion"
    image = image or f"mlstack/model-{settings.model_name}:{version()}"
    base = base or f"mlstack/inference:{version()}"
    pins = model_image.build(model_uri, image, base, tracking_uri)
    click.echo(f"built {image} ({' '.join(pins)})", err=True)
    click.echo(image)


def main() -> None:
    """The console script `mlstack`."""
    cli(prog_name="mlstack")
