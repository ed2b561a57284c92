"""The local stack's docker compose: the one place its command line is put together.

`mlstack local up|down|clean|logs|compose` and the Makefile's local-* targets all run it:
the project name, compose/compose.yaml, compose/auth-off.yaml when MLFLOW_AUTH_ENABLED is
false, the stack's `.env` and, where `make offline-images` wrote one, `.images.env`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from mlstack import ROOT, version
from mlstack.cli import docker_engine
from mlstack.cli.errors import CliError
from mlstack.cli.settings import LocalSettings, child_environment

COMPOSE_DIR = ROOT / "compose"
IMAGES_ENV = ROOT / ".images.env"
# compose's own bound on `up --wait`: the tracking server migrates its schema first.
UP_WAIT_S = 300


class StackError(CliError):
    """The stack cannot be started or stopped; the message says what to do."""


def compose_command(settings: LocalSettings, env_file: Path) -> list[str]:
    """`docker compose` with the stack's project, files and env files."""
    command = ["docker", "compose", "-p", settings.compose_project]
    command += ["-f", str(COMPOSE_DIR / "compose.yaml")]
    if not settings.mlflow_auth_enabled:
        command += ["-f", str(COMPOSE_DIR / "auth-off.yaml")]
    command += ["--env-file", str(env_file)]
    if IMAGES_ENV.exists():
        command += ["--env-file", str(IMAGES_ENV)]
    return command


def compose(settings: LocalSettings, env_file: Path, *args: str) -> None:
    """Run one compose command on the stack (compose.yaml tags its image with VERSION)."""
    command = compose_command(settings, env_file) + list(args)
    try:
        done = subprocess.run(command, env=child_environment(VERSION=version()), check=False)
    except FileNotFoundError:
        raise StackError("docker is not installed or not on PATH: install Docker") from None
    if done.returncode != 0:
        raise StackError(f"docker compose {' '.join(args)} failed (exit {done.returncode})")


def require_image(image: str, how: str) -> None:
    """Fail in one line when an image the stack runs has not been built here."""
    if not docker_engine.image_exists(image):
        raise StackError(f"image {image} is not built: run {how}")


def up(settings: LocalSettings, env_file: Path) -> None:
    """Start MySQL, MinIO and the tracking server; return once compose reports them healthy."""
    require_image(f"mlstack/tracking-server:{version()}", "make build-tracking-server")
    compose(settings, env_file, "up", "--detach", "--wait", "--wait-timeout", str(UP_WAIT_S))
    print(f"MLflow UI and tracking URI: {settings.tracking_uri}")
    print(f"MinIO console:              http://127.0.0.1:{settings.minio_console_port}")


def down(settings: LocalSettings, env_file: Path, *, volumes: bool) -> None:
    """Stop the stack; with volumes, delete its data too."""
    extra: Sequence[str] = ("--volumes", "--remove-orphans") if volumes else ()
    compose(settings, env_file, "down", *extra)
