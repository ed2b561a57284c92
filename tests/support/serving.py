"""The inference image serving one model for a test, on the session's Docker network."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import docker
from testcontainers.core.network import Network

from support.containers import has_exited, logs_of
from support.waiting import wait_for_http


@contextmanager
def serving(image: str, network: Network, env: Mapping[str, str]) -> Iterator[str]:
    """`docker run IMAGE serve` with env (MODEL_URI, ...); yields its URL once /ping answers
    200; removes the container on the way out."""
    container = docker.from_env().containers.run(
        image,
        ["serve"],
        detach=True,
        environment=dict(env),
        network=network.name,
        ports={"8080/tcp": ("127.0.0.1", None)},
        name=f"mlstack-test-serve-{uuid.uuid4().hex[:8]}",
    )
    try:
        container.reload()
        port = container.ports["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        wait_for_http(
            f"{url}/ping",
            timeout=120,
            give_up=lambda: has_exited(container),
            message=lambda: f"not ready: {logs_of(container)}",
        )
        yield url
    finally:
        container.remove(force=True)
