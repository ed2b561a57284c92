"""`mlstack`: one command for the whole loop. The Makefile's targets call it.

mlstack data ...                 train/test channels
mlstack local ...                the local stack's loop, backup, restore
mlstack aws ...                  AWS and SageMaker local mode
mlstack build-model-image ...    an inference image with one model in its own env
mlstack monitor ...              an endpoint's captured traffic against the training data
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlstack import version
from mlstack.cli import data, model_image
from mlstack.cli.aws.cli import aws
from mlstack.cli.local.cli import local
from mlstack.cli.monitor.command import monitor
from mlstack.cli.options import Context, fail
from mlstack.cli.settings import DEFAULT_ENV_FILE, ModelImageSettings, SettingsError, load


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version(), prog_name="mlstack")
@click.option(
    "--env-file",
    default=DEFAULT_ENV_FILE,
    show_default=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="settings file read after the environment (the local stack's .env)",
)
@click.pass_context
def cli(ctx: click.Context, env_file: Path) -> None:
    """Run the ML lifecycle with MLflow and SageMaker, on a laptop and on AWS.

    Every option falls back to its environment variable, then to --env-file; docs/configuration.md
    lists them all. `make help` shows the same workflows as make targets.
    """
    ctx.obj = Context(env_file=env_file)


cli.add_command(local)
cli.add_command(aws)
cli.add_command(monitor)


@cli.command("data", context_settings={"ignore_unknown_options": True}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def data_command(args: tuple[str, ...]) -> None:
    """Write train/test CSV channels (data/DATASET) and their features/target."""
    sys.exit(data.main(list(args)))


@cli.command("build-model-image")
@click.option("--model-uri", required=True, help="a model dir, models:/NAME@alias or runs:/...")
@click.option("--image", required=True, help="name:tag of the image to build")
@click.option("--base", help="the inference image [default mlstack/inference:VERSION]")
@click.option(
    "--mlflow-tracking-uri", help="resolves models:/ and runs:/ [env MLFLOW_TRACKING_URI]"
)
@click.pass_context
def build_model_image(
    ctx: click.Context,
    model_uri: str,
    image: str,
    base: str | None,
    mlflow_tracking_uri: str | None,
) -> None:
    """An image FROM mlstack/inference with one model and a venv of exactly its requirements."""
    try:
        settings = load(
            ModelImageSettings, ctx.obj.env_file, mlflow_tracking_uri=mlflow_tracking_uri
        )
        pins = model_image.build(
            model_uri, image, base or f"mlstack/inference:{version()}", settings.mlflow_tracking_uri
        )
    except (model_image.ModelImageError, SettingsError) as error:
        fail(model_image.PROGRAM, str(error))
    click.echo(f"built {image} ({' '.join(pins)})", err=True)
    click.echo(image)


def main() -> None:
    """The console script `mlstack`."""
    cli(prog_name="mlstack")
