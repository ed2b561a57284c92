"""The local stack: one named thing, run with docker compose (the one place its command line
is put together), never confused with another stack.

`mlstack local up|down|clean|logs|compose` and the Makefile's local-* targets all run it:
the project name, compose/compose.yaml, compose/auth-off.yaml when MLFLOW_AUTH_ENABLED is
false, the stack's env file and, where `make offline-images` wrote one, `.images.env`.

A stack is its env file: its name (COMPOSE_PROJECT) and ports are recorded there when it is
made (`mlstack local up --name NAME --port PORT`), and compose labels every container with
that file's path (ENV_FILE_LABEL). So every later command acts on the stack its env file
names, and refuses one that another env file started: `up` does not take over a name or a
port in use, and `down` never stops a stack it did not start.
"""

from __future__ import annotations

import socket
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
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ENV_FILE_LABEL = "org.mlstack.env-file"  # compose/compose.yaml: from MLSTACK_ENV_FILE
PORT_SEARCH = range(15600, 65000, 10)  # where a free block of ports is looked for


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
    """Run one compose command on the stack (compose.yaml tags its image with VERSION and
    labels the containers with the env file)."""
    command = compose_command(settings, env_file) + list(args)
    environment = child_environment(
        VERSION=version(), MLSTACK_ENV_FILE=str(Path(env_file).resolve())
    )
    try:
        done = subprocess.run(command, env=environment, check=False)
    except FileNotFoundError:
        raise StackError("docker is not installed or not on PATH: install Docker") from None
    if done.returncode != 0:
        raise StackError(f"docker compose {' '.join(args)} failed (exit {done.returncode})")


def containers(project: str, service: str | None = None, running: bool = False) -> list:
    """The stack's containers (of one service), running or not."""
    labels = [f"{PROJECT_LABEL}={project}"]
    if service:
        labels.append(f"{SERVICE_LABEL}={service}")
    return docker_engine.client().containers.list(all=not running, filters={"label": labels})


def started_from(project: str) -> Path | None:
    """The env file the stack of that name was started from (None: no such stack, or one
    started without the label)."""
    for container in containers(project):
        recorded = container.labels.get(ENV_FILE_LABEL)
        if recorded:
            return Path(recorded)
    return None


def require_own(settings: LocalSettings, env_file: Path, doing: str) -> None:
    """Refuse to act on a stack of this name that another env file started."""
    other = started_from(settings.compose_project)
    if other is not None and other != Path(env_file).resolve():
        raise StackError(
            f"stack {settings.compose_project!r} was started from {other}, not {env_file}: "
            f"nothing {doing}; act on it with its own file (mlstack --env-file {other} local "
            f"...), or give this stack another name (mlstack local up --name NAME --port PORT)"
        )


def port_user(port: int, project: str) -> str | None:
    """Who holds 127.0.0.1:port, when it is not this stack: another stack's container (named
    with its env file), another container, or another program; None when it is free."""
    for container in docker_engine.client().containers.list():
        for bindings in (container.ports or {}).values():
            if any(b.get("HostPort") == str(port) for b in bindings or []):
                owner = container.labels.get(PROJECT_LABEL)
                if owner == project:
                    return None
                if owner:
                    source = container.labels.get(ENV_FILE_LABEL)
                    return f"stack {owner!r}" + (f" of {source}" if source else "")
                return f"container {container.name}"
    return None if port_free(port) else "another program"


def free_port_block(size: int = 4) -> int:
    """The first port P of PORT_SEARCH with P .. P+size-1 all free on 127.0.0.1."""
    for start in PORT_SEARCH:
        if all(port_free(start + offset) for offset in range(size)):
            return start
    return PORT_SEARCH.start


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound (nothing listens there)."""
    with socket.socket() as probe:
        # As a server binds: connections of a stopped server left in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def require_ports(settings: LocalSettings) -> None:
    """The stack's published ports must be free (or its own)."""
    for variable, port in (
        ("MLFLOW_PORT", settings.mlflow_port),
        ("MINIO_CONSOLE_PORT", settings.minio_console_port),
        ("MINIO_PORT", settings.minio_port),
    ):
        user = port_user(port, settings.compose_project)
        if user is not None:
            raise StackError(
                f"{variable}={port} is taken by {user}: start this stack on other ports, "
                f"e.g. mlstack local up --name {settings.compose_project} "
                f"--port {free_port_block()}"
            )


def require_image(image: str, how: str) -> None:
    """Fail in one line when an image the stack runs has not been built here."""
    if not docker_engine.image_exists(image):
        raise StackError(f"image {image} is not built: run {how}")


def failed_service(settings: LocalSettings) -> str | None:
    """`SERVICE stopped: LAST ERROR LINE` of a service of the stack that exited with an
    error or is unhealthy, or None."""
    from mlstack.cli.local.endpoint import last_error_line

    for container in containers(settings.compose_project):
        state = container.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status")
        if (state.get("Status") == "exited" and state.get("ExitCode")) or health == "unhealthy":
            service = container.labels.get(SERVICE_LABEL, container.name)
            logs = container.logs(tail=50).decode(errors="replace")
            return f"{service} {'is unhealthy' if health else 'stopped'}: {last_error_line(logs)}"
    return None


def claim(settings: LocalSettings, env_file: Path) -> None:
    """Check, before anything is written or started, that this stack's name is not another
    env file's stack and that its ports are free (or its own), and that its image is built."""
    require_own(settings, env_file, "started")
    require_ports(settings)
    require_image(f"mlstack/tracking-server:{version()}", "make build-tracking-server")


def up(settings: LocalSettings, env_file: Path) -> None:
    """Start MySQL, MinIO and the tracking server; return once compose reports them healthy
    (`claim` first)."""
    try:
        compose(settings, env_file, "up", "--detach", "--wait", "--wait-timeout", str(UP_WAIT_S))
    except StackError:
        failed = failed_service(settings)
        if failed is None:
            raise
        raise StackError(f"{failed} (all of its log: make local-logs)") from None
    login = (
        ""
        if not settings.mlflow_auth_enabled
        else (
            f" (log in as {settings.mlflow_auth_admin_username}: `mlstack local login` prints the "
            "password and the export lines for MLflow's client)"
        )
    )
    print(f"stack {settings.compose_project!r} is up ({env_file})")
    print(f"MLflow UI and tracking URI: {settings.tracking_uri}{login}")
    print(f"MinIO console:              http://127.0.0.1:{settings.minio_console_port}")


def down(settings: LocalSettings, env_file: Path, *, volumes: bool) -> None:
    """Stop the stack; with volumes, delete its data too."""
    extra: Sequence[str] = ("--volumes", "--remove-orphans") if volumes else ()
    compose(settings, env_file, "down", *extra)
