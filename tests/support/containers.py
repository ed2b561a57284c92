"""Containers expected to stop by themselves, and facts about a running one, whichever
library started it (testcontainers' DockerContainer or docker-py's Container)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import docker
import requests
from docker.models.containers import Container
from testcontainers.core.network import Network


def wrapped(container: object) -> Container:
    """docker-py's view of a container started by testcontainers or by docker-py."""
    unwrap = getattr(container, "get_wrapped_container", None)
    return unwrap() if unwrap else container


def has_exited(container: object) -> bool:
    """Whether the container's process has ended (a server that crashed at start-up)."""
    inner = wrapped(container)
    inner.reload()
    return inner.status in ("exited", "dead")


def logs_of(container: object, last: int = 3000) -> str:
    """The last `last` characters of the container's output (stdout and stderr)."""
    return wrapped(container).logs().decode(errors="replace")[-last:]


@dataclass
class Exited:
    """How a container that was expected to stop on its own ended."""

    status: int
    logs: str
    seconds: float


def wait_for_exit(container: Container, timeout: float, started: float) -> Exited:
    """Wait for a started container to stop (kill it after `timeout`); collect its logs."""
    try:
        status = container.wait(timeout=timeout)["StatusCode"]
    except requests.exceptions.ConnectionError:  # docker-py's read timeout
        container.kill()
        status = -1
    seconds = time.monotonic() - started
    return Exited(status=status, logs=container.logs().decode(errors="replace"), seconds=seconds)


def run_to_exit(
    image: str,
    command: list[str] | None = None,
    *,
    timeout: float = 90,
    network: Network | None = None,
    env: Mapping[str, str] | None = None,
    entrypoint: list[str] | None = None,
    volumes: Mapping[str, dict[str, str]] | None = None,
) -> Exited:
    """Run a one-off container to its end (killed after `timeout`: status -1), then remove it."""
    started = time.monotonic()
    container = docker.from_env().containers.run(
        image,
        command,
        entrypoint=entrypoint,
        environment=dict(env or {}),
        network=network.name if network is not None else None,
        volumes=dict(volumes or {}),
        detach=True,
    )
    try:
        return wait_for_exit(container, timeout, started)
    finally:
        container.remove(force=True)
