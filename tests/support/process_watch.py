"""Command lines seen while something happens: a container's processes and the host's."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from testcontainers.core.container import DockerContainer


def _host_command_lines() -> list[str]:
    done = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[1:]


def _container_command_lines(container: DockerContainer) -> list[str]:
    wrapped = container._container  # set once testcontainers has created it
    if wrapped is None:
        return []
    try:
        top = wrapped.top(ps_args="-eww -o args")  # ww: whole lines, not 80 columns
    except Exception:  # not running yet, or already gone
        return []
    return [" ".join(row) for row in top.get("Processes") or []]


@contextmanager
def command_lines_during(container: DockerContainer, every_s: float = 0.05) -> Iterator[set[str]]:
    """Collect every command line of the container's processes and of the host's while
    the block runs (polled every `every_s` seconds); the set fills in as it goes."""
    seen: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.update(_container_command_lines(container))
            seen.update(_host_command_lines())
            stop.wait(every_s)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=10)
