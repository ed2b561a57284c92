"""`mlstack local ...`: the local stack's loop, backup and restore (the Makefile's local-*)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
import requests
from docker.errors import DockerException

from mlstack import version
from mlstack.cli.channels import ChannelError
from mlstack.cli.local import backup as backups
from mlstack.cli.local import loop as loops
from mlstack.cli.local import stack as stacks
from mlstack.cli.local import traffic as traffics
from mlstack.cli.local.jobs import JobError
from mlstack.cli.local.make_env import main as make_env
from mlstack.cli.monitor.captures import CaptureError, Location
from mlstack.cli.options import Context, fail, setting_option
from mlstack.cli.settings import LocalSettings, SettingsError, load

LOOP_ERRORS = (JobError, SettingsError, ChannelError, requests.RequestException)


def script_options(command):
    """--source-dir / --entry-point: the user's script instead of the built-in model."""
    command = setting_option(LocalSettings, "entry_point", "the script, in --source-dir")(command)
    return setting_option(LocalSettings, "source_dir", "your training script's directory")(command)


@click.group()
@click.option("--network", help="the stack's Docker network [default COMPOSE_PROJECT_default]")
@click.option("--tracking-uri", help="the tracking server from here [default from MLFLOW_PORT]")
@click.option(
    "--tracking-uri-in-network",
    default="http://tracking-server:5000",
    show_default=True,
    help="the tracking server from the jobs",
)
@setting_option(LocalSettings, "experiment_name", "MLflow experiment")
@setting_option(LocalSettings, "model_name", "registered model")
@setting_option(LocalSettings, "data_dir", "train/test channels (make data)", type=Path)
@click.option("--jobs-dir", default=".jobs", show_default=True, type=click.Path(path_type=Path))
@click.option("--image", help="training image [default mlstack/training:VERSION]")
@setting_option(LocalSettings, "random_state", "seed of the jobs and the search", type=int)
@click.pass_context
def local(ctx: click.Context, **options: object) -> None:
    """The local stack and its loop: up, train, tune, promote, serve, predict, down; backup."""
    parent: Context = ctx.obj
    ctx.obj = {"env_file": parent.env_file, **options}


def make_loop(ctx: click.Context, **overrides: object) -> loops.Loop:
    """The Loop: settings (environment, .env) overridden by the group's and command's options."""
    options = dict(ctx.obj)
    env_file = options.pop("env_file")
    names = ("network", "tracking_uri", "tracking_uri_in_network", "jobs_dir", "image")
    given = {name: options.pop(name) for name in names}
    try:
        settings = load(LocalSettings, env_file, **options, **overrides)
    except SettingsError as error:
        fail(loops.PROGRAM, str(error))
    return loops.Loop(
        settings=settings,
        network=given["network"] or settings.network,
        tracking_uri=given["tracking_uri"] or settings.tracking_uri,
        tracking_uri_in_network=given["tracking_uri_in_network"],
        jobs_dir=given["jobs_dir"],
        **({"image": given["image"]} if given["image"] else {}),
    )


def run_loop(action, *args: object) -> None:
    """Run a loop command; its errors end in one line and exit status 1."""
    try:
        action(*args)
    except LOOP_ERRORS as error:
        fail(loops.PROGRAM, str(error))


@local.command()
@setting_option(LocalSettings, "n_estimators", "trees", type=int)
@setting_option(LocalSettings, "min_samples_leaf", "smallest leaf", type=int)
@setting_option(LocalSettings, "registered_model_name", "also register the model so")
@script_options
@click.pass_context
def train(ctx: click.Context, **overrides: object) -> None:
    """One SageMaker-style training job against the stack, its log streamed."""
    run_loop(loops.train, make_loop(ctx, **overrides))


@local.command()
@setting_option(LocalSettings, "tuning_max_jobs", "jobs in all", "--jobs", type=int)
@setting_option(LocalSettings, "tuning_max_parallel_jobs", "at a time", "--parallel", type=int)
@script_options
@click.pass_context
def hpo(ctx: click.Context, **overrides: object) -> None:
    """Tune: jobs over the tuning's ranges under one run; the best one registered."""
    loop = make_loop(ctx, **overrides)
    run_loop(loops.hpo, loop, loop.settings.tuning_max_jobs, loop.settings.tuning_max_parallel_jobs)


@local.command()
@click.pass_context
def promote(ctx: click.Context) -> None:
    """Alias `champion` the registered version with the lowest objective."""
    run_loop(loops.promote, make_loop(ctx))


@local.command()
@click.option("--endpoint", default="http://127.0.0.1:8080", show_default=True)
@click.pass_context
def predict(ctx: click.Context, endpoint: str) -> None:
    """Send the first test row to the endpoint as the reference does; print the prediction."""
    run_loop(loops.predict, make_loop(ctx), endpoint)


@local.command()
@click.option("--endpoint", default="http://127.0.0.1:8080", show_default=True)
@click.option("--rows", type=int, help="test rows to send, each once [default all]")
@click.option("--shifted-share", default=0.5, show_default=True, help="the last ones shifted")
@click.option("--shift", multiple=True, help="FEATURE=STDS [default: 2 features by 2 std]")
@click.option(
    "--ground-truth",
    default=Path("build/monitor/ground-truth.csv"),
    show_default=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="where the rows' true targets go, by inference id",
)
@click.pass_context
def traffic(ctx: click.Context, endpoint: str, rows: int | None, shifted_share: float, **o) -> None:
    """Send test rows to the endpoint, the last ones with features shifted (for monitor)."""
    loop = make_loop(ctx)
    settings = loop.settings
    try:
        spec = loops.data_spec(settings.data_dir)
        started = datetime.now(UTC).replace(microsecond=0)  # captures keep whole seconds
        sent = traffics.send(
            endpoint,
            loop.settings.data_dir / "test" / "test.csv",
            spec["target"],
            spec["features"].split(),
            rows,
            shifted_share,
            o["shift"],
            o["ground_truth"],
        )
        shifted = ", ".join(f"{name} +{stds:g} std" for name, stds in sent.shifted.items())
        print(
            f"sent {sent.rows} rows in {sent.requests} requests to {endpoint}; the last "
            f"{shifted_share:.0%} shifted: {shifted}; ground truth in {sent.ground_truth}"
        )
        location = Location(settings.capture_uri, settings.endpoint_name)
        traffics.wait_captured(settings.minio_s3(), location, started, sent.ids)
    except (*LOOP_ERRORS, traffics.TrafficError, CaptureError) as error:
        fail(loops.PROGRAM, str(error))
    print(f"captured: all {sent.requests} requests are in {location.uri}")


@local.command()
@click.option("--image", "image", help="inference image [default mlstack/inference:VERSION]")
@click.option("--container", help="the endpoint's container [default COMPOSE_PROJECT-inference]")
@click.option("--port", default=8080, show_default=True, help="on 127.0.0.1")
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for /ping")
@click.pass_context
def serve(
    ctx: click.Context, image: str | None, container: str | None, port: int, timeout: float
) -> None:
    """Serve models:/MODEL_NAME@champion on 127.0.0.1:PORT; wait until it answers /ping."""
    loop = make_loop(ctx)
    run_loop(
        loops.serve,
        loop,
        image or f"mlstack/inference:{version()}",
        container or loop.settings.endpoint_container,
        port,
        timeout,
    )


def backup_settings(ctx: click.Context, project: str | None) -> LocalSettings:
    """The stack's settings for backup and restore; its .env must exist."""
    env_file = ctx.obj["env_file"]
    backups.require_env_file(env_file)
    return load(LocalSettings, env_file, compose_project=project)


BACKUP_ERRORS = (backups.BackupError, DockerException, SettingsError)


@local.command()
@setting_option(LocalSettings, "compose_project", "compose project", "--project")
@click.option("--into", default="backups", show_default=True, type=click.Path(path_type=Path))
@click.pass_context
def backup(ctx: click.Context, compose_project: str | None, into: Path) -> None:
    """Dump the stack's databases and copy its bucket into INTO/YYYYmmdd-HHMMSS/."""
    try:
        backups.backup(backup_settings(ctx, compose_project), into)
    except BACKUP_ERRORS as error:
        fail(backups.PROGRAM, str(error))


@local.command()
@setting_option(LocalSettings, "compose_project", "compose project", "--project")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="really overwrite the stack's data")
@click.pass_context
def restore(ctx: click.Context, compose_project: str | None, source: Path, yes: bool) -> None:
    """Replace the stack's databases and bucket objects by a backup's."""
    try:
        backups.restore(backup_settings(ctx, compose_project), source, yes)
    except BACKUP_ERRORS as error:
        fail(backups.PROGRAM, str(error))


@local.command("make-env")
@click.argument("example", default=".env.example", type=click.Path(exists=True))
@click.pass_context
def make_env_command(ctx: click.Context, example: str) -> None:
    """Write the stack's .env (mode 0600) from EXAMPLE with fresh secrets, or complete it."""
    make_env(example, str(ctx.obj["env_file"]))


def stack_settings(ctx: click.Context) -> LocalSettings:
    """The stack's settings (environment, then its .env)."""
    try:
        return load(LocalSettings, ctx.obj["env_file"])
    except SettingsError as error:
        fail(stacks.PROGRAM, str(error))


def run_stack(action, *args: object, **kwargs: object) -> None:
    """Run a compose action; its errors end in one line and exit status 1."""
    try:
        action(*args, **kwargs)
    except (stacks.StackError, DockerException) as error:
        fail(stacks.PROGRAM, str(error))


@local.command()
@click.option("--example", default=".env.example", show_default=True, type=click.Path(exists=True))
@click.pass_context
def up(ctx: click.Context, example: str) -> None:
    """Write or complete .env, start MySQL, MinIO and the tracking server; wait until healthy.

    The tracking server's image must be built (make build-tracking-server; make local-up does)."""
    env_file = ctx.obj["env_file"]
    make_env(example, str(env_file))
    run_stack(stacks.up, stack_settings(ctx), env_file)


def stop_stack(ctx: click.Context, *, volumes: bool) -> None:
    """Stop the stack's training jobs (their runs end KILLED), its endpoint, then the stack."""
    settings = stack_settings(ctx)
    run_loop(loops.stop_jobs, settings.network)
    run_loop(loops.remove_endpoint, settings.endpoint_container)
    run_stack(stacks.down, settings, ctx.obj["env_file"], volumes=volumes)


@local.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the stack, its training jobs and its endpoint, keeping its data."""
    stop_stack(ctx, volumes=False)


@local.command()
@click.pass_context
def clean(ctx: click.Context) -> None:
    """Stop the stack, its training jobs and its endpoint, and delete its data volumes."""
    stop_stack(ctx, volumes=True)


@local.command()
@click.pass_context
def logs(ctx: click.Context) -> None:
    """Follow the stack's logs."""
    run_stack(
        stacks.compose,
        stack_settings(ctx),
        ctx.obj["env_file"],
        "logs",
        "--follow",
        "--tail",
        "100",
    )


@local.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def compose(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Any docker compose command on the stack (its project, files and env files)."""
    run_stack(stacks.compose, stack_settings(ctx), ctx.obj["env_file"], *args)


@local.command()
@click.option("--port", default=8080, show_default=True, help="the endpoint on 127.0.0.1")
@click.pass_context
def demo(ctx: click.Context, port: int) -> None:
    """Everything in order: up, train, tune, promote, serve, predict (images built: make build;
    channels written: mlstack data)."""
    ctx.invoke(up)
    loop = make_loop(ctx)
    run_loop(loops.train, loop)
    run_loop(loops.hpo, loop, loop.settings.tuning_max_jobs, loop.settings.tuning_max_parallel_jobs)
    run_loop(loops.promote, loop)
    image = f"mlstack/inference:{version()}"
    run_loop(loops.serve, loop, image, loop.settings.endpoint_container, port, 120.0)
    run_loop(loops.predict, loop, f"http://127.0.0.1:{port}")
