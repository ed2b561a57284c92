"""`mlstack local ...`: the local stack (up, login, down ...), its loop (train, hpo, promote,
serve, predict, traffic, demo), backup and restore: the Makefile's local-* targets.

The group's options (and the root's --env-file) are accepted after the command too
(`mlstack local train --tracking-uri URI`); there they win over the same option before it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from mlstack.cli.local import backup as backups
from mlstack.cli.local import endpoint as endpoints
from mlstack.cli.local import hpo as tunings
from mlstack.cli.local import loop as loops
from mlstack.cli.local import promote as promotions
from mlstack.cli.local import stack as stacks
from mlstack.cli.local import traffic as traffics
from mlstack.cli.local.login import login_lines, write_login
from mlstack.cli.local.make_env import main as make_env
from mlstack.cli.monitor.captures import Location
from mlstack.cli.options import (
    GIVEN,
    env_file_of,
    group_options,
    setting_option,
    shared_options,
)
from mlstack.cli.settings import LocalSettings, env_file_values, export_for_libraries, load

ENDPOINT_TIMEOUT_S = 120.0


def option(field: str, help_text: str, *decls: str, **kwargs: object):
    """An option overriding a LocalSettings field; its help names the variable."""
    return setting_option(LocalSettings, field, help_text, *decls, **kwargs)


# The group's options, accepted before or after the command (`shared_options`).
LOCAL_OPTIONS = (
    click.option("--network", help="the stack's Docker network [default COMPOSE_PROJECT_default]"),
    click.option(
        "--tracking-uri",
        help="the tracking server from here [default http://127.0.0.1:MLFLOW_PORT]",
    ),
    click.option(
        "--tracking-uri-in-network",
        help="the tracking server from the jobs [default http://tracking-server:5000]",
    ),
    option("experiment_name", "MLflow experiment"),
    option("model_name", "registered model"),
    option("data_dir", "train/test channels (make data)", type=Path),
    click.option(
        "--jobs-dir", type=click.Path(path_type=Path), help="job directories [default .jobs]"
    ),
    option("training_image", "training image (default mlstack/training:VERSION)", "--image"),
    option("random_state", "the jobs' seed", type=int),
)
LOCAL_NAMES = ("network", "tracking_uri", "tracking_uri_in_network", "jobs_dir")
DEFAULTS = {"tracking_uri_in_network": "http://tracking-server:5000", "jobs_dir": Path(".jobs")}


def script_options(command):
    """--source-dir / --entry-point: the user's script instead of the built-in model."""
    command = option("entry_point", "the script, in --source-dir")(command)
    return option("source_dir", "your training script's directory")(command)


@click.group()
@group_options(LOCAL_OPTIONS)
@click.pass_context
def local(ctx: click.Context, **options: object) -> None:
    """The local stack and its loop: up, train, tune, promote, serve, predict, down; backup."""
    ctx.meta[GIVEN] = {name: value for name, value in options.items() if value is not None}


def command(*args, **kwargs):
    """A command of the group, carrying the group's options (and --env-file) as well."""

    def decorate(function):
        return local.command(*args, **kwargs)(shared_options(LOCAL_OPTIONS)(function))

    return decorate


def stack_settings(ctx: click.Context, **overrides: object) -> LocalSettings:
    """The stack's settings: the environment, its env file, the options given."""
    given = {k: v for k, v in ctx.meta.get(GIVEN, {}).items() if k not in LOCAL_NAMES}
    given.update({k: v for k, v in overrides.items() if v is not None})
    return load(LocalSettings, env_file_of(ctx), **given)


def make_loop(ctx: click.Context, **overrides: object) -> loops.Loop:
    """The Loop: the stack's settings, the group's and the command's options; MLflow's
    client in this process logs in as the loop does."""
    settings = stack_settings(ctx, **overrides)
    given = {**DEFAULTS, **ctx.meta.get(GIVEN, {})}
    export_for_libraries(settings.tracking_credentials())
    return loops.Loop(
        settings=settings,
        network=given.get("network") or settings.network,
        tracking_uri=given.get("tracking_uri") or settings.tracking_uri,
        tracking_uri_in_network=str(given["tracking_uri_in_network"]),
        jobs_dir=Path(given["jobs_dir"]),
        image=settings.training_image_tag,
    )


@command()
@option("n_estimators", "trees", type=int)
@option("min_samples_leaf", "smallest leaf", type=int)
@option("registered_model_name", "also register the model so")
@script_options
@click.pass_context
def train(ctx: click.Context, **overrides: object) -> None:
    """One SageMaker-style training job against the stack, its log streamed."""
    loops.train(make_loop(ctx, **overrides))


@command()
@option("tuning_max_jobs", "jobs in all", "--jobs", type=int)
@option("tuning_max_parallel_jobs", "at a time", "--parallel", type=int)
@option("tuning_seed", "the search's seed (default: a new one each time)", "--seed", type=int)
@script_options
@click.pass_context
def hpo(ctx: click.Context, **overrides: object) -> None:
    """Tune: jobs over the tuning's ranges under one run; the best one registered."""
    loop = make_loop(ctx, **overrides)
    tunings.hpo(loop, loop.settings.tuning_max_jobs, loop.settings.tuning_max_parallel_jobs)


@command()
@click.pass_context
def promote(ctx: click.Context) -> None:
    """Alias `champion` the registered version with the lowest objective; say why."""
    promotions.promote(make_loop(ctx))


@command()
@click.option("--endpoint", help="the endpoint's URL [default http://127.0.0.1:SERVE_PORT]")
@click.pass_context
def predict(ctx: click.Context, endpoint: str | None) -> None:
    """Send the first test row to the endpoint as the reference does; print the prediction."""
    endpoints.predict(make_loop(ctx), endpoint)


@command()
@click.option("--endpoint", help="the endpoint's URL [default http://127.0.0.1:SERVE_PORT]")
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
def traffic(
    ctx: click.Context, endpoint: str | None, rows: int | None, shifted_share: float, **o
) -> None:
    """Send test rows to the endpoint, the last ones with features shifted (for monitor)."""
    settings = make_loop(ctx).settings
    endpoint = endpoint or settings.endpoint
    spec = loops.data_spec(settings.data_dir)
    started = datetime.now(UTC).replace(microsecond=0)  # captures keep whole seconds
    sent = traffics.send(
        endpoint,
        settings.data_dir / "test" / "test.csv",
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
    print(f"captured: all {sent.requests} requests are in {location.uri}")


@command()
@option("inference_image", "inference image (default mlstack/inference:VERSION)", "--image")
@option("serve_port", "the endpoint's port on 127.0.0.1", "--port", type=int)
@click.option("--container", help="the endpoint's container [default COMPOSE_PROJECT-inference]")
@click.option(
    "--timeout", default=ENDPOINT_TIMEOUT_S, show_default=True, help="seconds to wait for /ping"
)
@click.pass_context
def serve(ctx: click.Context, container: str | None, timeout: float, **overrides: object) -> None:
    """Serve models:/MODEL_NAME@champion on 127.0.0.1:SERVE_PORT; wait until it answers /ping."""
    loop = make_loop(ctx, **overrides)
    endpoints.serve(loop, container or loop.settings.endpoint_container, timeout)


def backup_settings(ctx: click.Context, project: str | None) -> LocalSettings:
    """The stack's settings for backup and restore; its env file must exist."""
    backups.require_env_file(env_file_of(ctx))
    return stack_settings(ctx, compose_project=project)


@command()
@option("compose_project", "compose project", "--project")
@click.option("--into", default="backups", show_default=True, type=click.Path(path_type=Path))
@click.pass_context
def backup(ctx: click.Context, compose_project: str | None, into: Path) -> None:
    """Dump the stack's databases and copy its bucket into INTO/YYYYmmdd-HHMMSS/."""
    backups.backup(backup_settings(ctx, compose_project), into)


@command()
@option("compose_project", "compose project", "--project")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="really overwrite the stack's data")
@click.pass_context
def restore(ctx: click.Context, compose_project: str | None, source: Path, yes: bool) -> None:
    """Replace the stack's databases and bucket objects by a backup's."""
    backups.restore(backup_settings(ctx, compose_project), source, yes, env_file_of(ctx))


@command("make-env")
@click.argument("example", default=".env.example", type=click.Path(exists=True))
@click.pass_context
def make_env_command(ctx: click.Context, example: str) -> None:
    """Write the stack's env file (mode 0600) from EXAMPLE with fresh secrets and the stack's
    name and ports, or complete it."""
    make_env(example, str(env_file_of(ctx)), stack_settings(ctx).identity())


def named(name: str | None, port: int | None) -> dict[str, object]:
    """--name and --port as settings: MinIO's console on PORT+1, the endpoint on PORT+2,
    MinIO's S3 API on PORT+3."""
    given: dict[str, object] = {"compose_project": name}
    if port is not None:
        given.update(
            mlflow_port=port, minio_console_port=port + 1, serve_port=port + 2, minio_port=port + 3
        )
    return given


def require_recorded(env_file: Path, settings: LocalSettings) -> None:
    """An env file records one stack: refuse to start another name or port with it (given as
    options or in the environment), which would leave the file naming the wrong one."""
    if not env_file.is_file():
        return
    recorded = env_file_values(env_file)
    name = recorded.get("COMPOSE_PROJECT") or LocalSettings.model_fields["compose_project"].default
    port = recorded.get("MLFLOW_PORT") or str(LocalSettings.model_fields["mlflow_port"].default)
    if (name, port) == (settings.compose_project, str(settings.mlflow_port)):
        return
    wanted = settings.compose_project
    raise stacks.StackError(
        f"{env_file} holds stack {name!r} (MLflow on port {port}): start it with `mlstack local "
        f"up`, or give {wanted!r} a file of its own: export ENV_FILE=.env.{wanted}, then "
        f"mlstack local up --name {wanted} --port {settings.mlflow_port}"
    )


@command()
@option("compose_project", "the stack's name (its compose project)", "--name")
@option(
    "mlflow_port", "the tracking server's port (MinIO +1, endpoint +2, S3 +3)", "--port", type=int
)
@click.option("--example", default=".env.example", show_default=True, type=click.Path(exists=True))
@click.pass_context
def up(
    ctx: click.Context, compose_project: str | None, mlflow_port: int | None, example: str
) -> None:
    """Write or complete the stack's env file (its name, ports, fresh secrets), start MySQL,
    MinIO and the tracking server; wait until healthy.

    The tracking server's image must be built (make build-tracking-server; make local-up does)."""
    env_file = env_file_of(ctx)
    given = named(compose_project, mlflow_port)
    settings = stack_settings(ctx, **given)
    require_recorded(env_file, settings)
    stacks.claim(settings, env_file)
    make_env(example, str(env_file), settings.identity())
    stacks.up(stack_settings(ctx, **given), env_file)  # read again: the file's secrets


@command()
@click.option(
    "--write",
    type=click.Path(path_type=Path, dir_okay=False),
    help="write the variables to this file (mode 0600) for a notebook, instead of printing",
)
@click.pass_context
def login(ctx: click.Context, write: Path | None) -> None:
    """Print the export lines that point MLflow's client at the stack, logged in as its
    admin (`eval "$(mlstack local login)"`), and the UI's URL."""
    backups.require_env_file(env_file_of(ctx))
    settings = stack_settings(ctx)
    if write is not None:
        write_login(settings, write)
        return
    for line in login_lines(settings):
        click.echo(line)


def stop_stack(ctx: click.Context, *, volumes: bool) -> None:
    """Stop the stack's training jobs (their runs end KILLED), its endpoint, then the stack,
    if this env file started it."""
    env_file = env_file_of(ctx)
    if not env_file.exists():
        raise stacks.StackError(
            f"{env_file} is missing: no stack of it to stop (a stack started from another "
            "file: mlstack --env-file FILE local down)"
        )
    settings = stack_settings(ctx)
    stacks.require_own(settings, env_file, "stopped")
    loops.stop_jobs(settings.network)
    endpoints.remove_endpoint(settings.endpoint_container)
    stacks.down(settings, env_file_of(ctx), volumes=volumes)


@command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Stop the stack, its training jobs and its endpoint, keeping its data."""
    stop_stack(ctx, volumes=False)


@command()
@click.pass_context
def clean(ctx: click.Context) -> None:
    """Stop the stack, its training jobs and its endpoint, and delete its data volumes."""
    stop_stack(ctx, volumes=True)


@command()
@click.pass_context
def logs(ctx: click.Context) -> None:
    """Follow the stack's logs."""
    stacks.compose(stack_settings(ctx), env_file_of(ctx), "logs", "--follow", "--tail", "100")


@local.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def compose(ctx: click.Context, args: tuple[str, ...]) -> None:
    """Any docker compose command on the stack (its project, files and env files)."""
    stacks.compose(stack_settings(ctx), env_file_of(ctx), *args)


@command()
@option("serve_port", "the endpoint's port on 127.0.0.1", "--port", type=int)
@click.pass_context
def demo(ctx: click.Context, serve_port: int | None) -> None:
    """Everything in order: up, train, tune, promote, serve, predict (images built: make build;
    channels written: mlstack data)."""
    ctx.invoke(up, compose_project=None, mlflow_port=None, example=".env.example")
    loop = make_loop(ctx, serve_port=serve_port)  # after `up`: its env file exists now
    loops.train(loop)
    tunings.hpo(loop, loop.settings.tuning_max_jobs, loop.settings.tuning_max_parallel_jobs)
    promotions.promote(loop)
    endpoints.serve(loop, loop.settings.endpoint_container, ENDPOINT_TIMEOUT_S)
    endpoints.predict(loop)
