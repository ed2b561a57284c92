"""The project's three images, built one way (the Docker SDK, from the repository's root as
`images/NAME/Dockerfile` expects): `mlstack build` (make build, make build-NAME) tags them
mlstack/NAME:VERSION and :latest; `mlstack aws push` builds them for linux/amd64.

Through the engine's API no CLI runs, so nothing prints the docker CLI's deprecation banner
for its legacy builder, and a build says only what it built, or why it failed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import click

from mlstack import ROOT, version
from mlstack.cli import docker_engine

IMAGES = ("tracking-server", "training", "inference")
DEFAULT_PYTHON_BASE_IMAGE = "python:3.11-slim"
IMAGES_ENV = ROOT / ".images.env"
TAIL = 30  # lines of a failed build's log shown above its error line


def python_base_image(configured: str = "") -> str:
    """PYTHON_BASE_IMAGE as configured, else .images.env's (the offline stand-in), else the
    public image."""
    if configured:
        return configured
    if IMAGES_ENV.exists():
        for line in IMAGES_ENV.read_text().splitlines():
            key, _, found = line.strip().partition("=")
            if key.strip() == "PYTHON_BASE_IMAGE" and found.strip():
                return found.strip()
    return DEFAULT_PYTHON_BASE_IMAGE


def build_image(
    name: str,
    tag: str,
    base: str,
    *,
    root: Path = ROOT,
    labels: dict[str, str] | None = None,
    platform: str | None = None,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Build root/images/NAME/Dockerfile (the repository's root as context) into tag."""
    docker_engine.build(
        root,
        tag,
        dockerfile=f"images/{name}/Dockerfile",
        buildargs={"PYTHON_BASE_IMAGE": base, "VERSION": version()},
        labels=labels,
        platform=platform,
        on_line=on_line,
    )


def build_for_stack(names: tuple[str, ...], base: str, verbose: bool) -> None:
    """Build the images (all three when none is named) as mlstack/NAME:VERSION and :latest;
    a line for each; the tail of a failed build's log above its error line."""
    for name in names or IMAGES:
        tag = f"mlstack/{name}:{version()}"
        tail: deque[str] = deque(maxlen=TAIL)
        started = time.monotonic()
        try:
            build_image(name, tag, base, on_line=click.echo if verbose else tail.append)
        except docker_engine.DockerError:
            for line in tail:
                click.echo(line, err=True)
            raise
        docker_engine.client().images.get(tag).tag(f"mlstack/{name}", "latest")
        click.echo(f"built {tag} ({time.monotonic() - started:.0f} s)")
