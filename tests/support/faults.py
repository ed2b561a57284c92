"""Faults for the tracking server's tests: its own stack, pauses, a killed main process,
and a container's memory sampled while it works. Everything on the test's own network and
127.0.0.1."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import docker
from testcontainers.core.network import Network

from support.images import image_names
from support.ports import free_port
from support.stack import MinIO, MySQL, tracking_server_env
from support.waiting import wait_for_http, wait_until

# The documented bound (docs/operations.md, "Bounded waits"): a request that needs a database
# or object store that does not answer gets an error within this many seconds.
ERROR_BOUND_S = 30


@dataclass
class FaultStack:
    """MySQL, MinIO and a tracking server that Docker restarts whenever its process dies."""

    network: Network
    mysql: MySQL
    minio: MinIO
    server: docker.models.containers.Container
    port: int

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_ready(self, timeout: float = 120) -> float:
        """Seconds until /ready answers 200 (the server is up and reaches its database)."""
        return wait_for_http(
            f"{self.uri}/ready", timeout=timeout, request_timeout=5, message=self._not_ready
        )

    def _not_ready(self) -> str:
        self.server.reload()
        logs = self.server.logs(tail=40).decode()
        return f"tracking server not ready ({self.server.status}):\n{logs}"

    def server_state(self) -> tuple[int, str]:
        """(Docker's restart count, when the container last started)."""
        self.server.reload()
        return self.server.attrs["RestartCount"], self.server.attrs["State"]["StartedAt"]


@contextmanager
def run_fault_server(image: str, network: Network, mysql: MySQL, minio: MinIO) -> Iterator:
    """The tracking server with a restart policy, on a fixed 127.0.0.1 port: a restarted
    container keeps its address, so clients carry on as they would against a real one."""
    port = free_port()
    # Access control is beside the point here (and covered elsewhere): it stays off.
    env = tracking_server_env(mysql, minio, MLFLOW_AUTH_ENABLED="false")
    client = docker.from_env()
    server = client.containers.run(
        image,
        detach=True,
        environment=env,
        network=network.name,
        ports={"5000/tcp": ("127.0.0.1", port)},
        restart_policy={"Name": "always"},
    )
    try:
        yield server, port
    finally:
        server.remove(force=True, v=True)


@contextmanager
def paused(container) -> Iterator[None]:
    """The container frozen (docker pause): its sockets accept, nothing answers."""
    wrapped = container.get_wrapped_container()
    wrapped.pause()
    try:
        yield
    finally:
        wrapped.unpause()


def kill_main_process(container) -> None:
    """SIGKILL the container's main process from outside, as a crash would end it.

    `docker kill` counts as a deliberate stop and Docker would not restart the container;
    inside the container, PID 1 ignores SIGKILL. Without the right to signal it from here,
    a helper container in the host's PID namespace does it.
    """
    container.reload()
    pid = container.attrs["State"]["Pid"]
    try:
        os.kill(pid, signal.SIGKILL)
    except PermissionError:
        docker.from_env().containers.run(
            image_names()["PYTHON_BASE_IMAGE"],
            ["kill", "-9", str(pid)],
            pid_mode="host",
            remove=True,
        )


def _rss(stats: dict) -> int:
    """Anonymous (process) memory of a container from one docker stats sample.

    Page cache is left out: writing a 1 GiB temporary file fills the cgroup's cache, which
    the kernel gives back on demand and which is no measure of the server's own use.
    """
    detail = stats.get("memory_stats", {}).get("stats", {})
    for key in ("total_rss", "rss", "anon"):  # cgroup v1, then v2
        if key in detail:
            return int(detail[key])
    return int(stats.get("memory_stats", {}).get("usage", 0))


@dataclass
class MemorySampler:
    """Samples a container's memory (docker stats, about once a second) in a thread."""

    container: object
    samples: list[int] = field(default_factory=list)
    max_usage: int = 0  # cgroup v1's max_usage_in_bytes: page cache included
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        for stats in self.container.stats(stream=True, decode=True):
            memory = stats.get("memory_stats", {})
            if memory:
                self.samples.append(_rss(stats))
                self.max_usage = max(self.max_usage, int(memory.get("max_usage", 0)))
            if self._stop.is_set():
                return

    def __enter__(self) -> MemorySampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.samples, timeout=30, every=0.2, message="no docker stats sample")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def peak(self) -> int:
        return max(self.samples)
