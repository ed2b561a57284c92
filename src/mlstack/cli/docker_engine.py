"""Docker, driven one way: through its SDK (docker-py), by every command but those whose tool
runs the docker CLI itself (docker compose; SageMaker SDK local mode runs compose).

`client()` is the one Docker client (a one-line error when no engine answers); `build()` the
one image build: its log streamed to a callback, a failure as one line naming the cause.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from mlstack.cli.errors import CliError

if TYPE_CHECKING:
    import docker

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class DockerError(CliError):
    """Docker cannot do what the command needs; the message says what to do."""


@cache
def client() -> docker.DockerClient:
    """The Docker engine's client (DOCKER_HOST or the local socket), checked to answer."""
    import docker
    from docker.errors import DockerException

    try:
        found = docker.from_env()
        found.ping()
    except DockerException as error:
        raise DockerError(f"no Docker engine answers ({error}): start Docker") from None
    return found


def image_exists(tag: str) -> bool:
    """Whether the engine has the image (by name:tag or id)."""
    from docker.errors import ImageNotFound

    try:
        client().images.get(tag)
    except ImageNotFound:
        return False
    return True


def cause(lines: list[str]) -> str:
    """The line of a failed build that says why: the last error line, without colours."""
    text = [ANSI.sub("", line).strip() for line in lines]
    text = [line for line in text if line]
    errors = [
        line
        for line in text
        if ("Error" in line or "ERROR" in line) and "returned a non-zero code" not in line
    ]
    return ((errors or text or ["no output"])[-1])[:300]


def build(
    context: Path,
    tag: str,
    *,
    dockerfile: str = "Dockerfile",
    buildargs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    platform: str | None = None,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Build context (its .dockerignore applies) into tag; each log line goes to on_line.

    The engine's own builder through its API: no CLI, no buildx needed, nothing printed but
    what on_line prints. A failure is a DockerError naming the build's last error line."""
    from docker.errors import APIError

    lines: list[str] = []
    try:
        stream = client().api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=dict(buildargs or {}),
            labels=dict(labels or {}),
            platform=platform,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                lines.append(str(chunk["error"]))
                raise DockerError(f"docker build of {tag} failed: {cause(lines)}")
            for line in str(chunk.get("stream", "")).splitlines():
                lines.append(line)
                if on_line is not None and line.strip():
                    on_line(ANSI.sub("", line).rstrip())
    except APIError as error:
        raise DockerError(f"docker build of {tag} failed: {error.explanation or error}") from None
