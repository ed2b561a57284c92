"""`mlstack local login`: one step from a running stack to MLflow's client pointed at it.

It prints the `export` lines MLflow's client reads (MLFLOW_TRACKING_URI, and the admin's
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD from the stack's env file when access
control is on), for `eval "$(mlstack local login)"`, or writes them, mode 0600, to a file a
notebook loads (`--write FILE`); the UI's URL and how to log in go to stderr.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from mlstack.cli.local.make_env import write_private
from mlstack.cli.settings import LocalSettings


def login_variables(settings: LocalSettings) -> dict[str, str]:
    """What MLflow's client needs for this stack: its URI, and the admin when auth is on."""
    return {"MLFLOW_TRACKING_URI": settings.tracking_uri, **settings.admin_login()}


def ui_hint(settings: LocalSettings) -> str:
    """Where the UI is, and who to log in as."""
    who = (
        f" (log in as {settings.mlflow_auth_admin_username} with MLFLOW_TRACKING_PASSWORD)"
        if settings.mlflow_auth_enabled
        else " (access control is off)"
    )
    return f"stack {settings.compose_project!r}: MLflow UI at {settings.tracking_uri}{who}"


def login_lines(settings: LocalSettings) -> list[str]:
    """`export NAME=value` lines for a shell; the hint on stderr."""
    click.echo(f'# {ui_hint(settings)}; in a shell: eval "$(mlstack local login)"', err=True)
    return [
        f"export {name}={shlex.quote(value)}" for name, value in login_variables(settings).items()
    ]


def write_login(settings: LocalSettings, path: Path) -> None:
    """The variables as NAME=value lines in a private file (python-dotenv reads it)."""
    text = "".join(f"{name}={value}\n" for name, value in login_variables(settings).items())
    write_private(path, text)
    click.echo(f"wrote {path} (mode 0600): in a notebook, dotenv.load_dotenv({str(path)!r})")
    click.echo(f"# {ui_hint(settings)}", err=True)
