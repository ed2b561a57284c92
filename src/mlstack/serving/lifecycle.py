"""Worker lifecycle: readiness shared by the workers, the per-invocation watchdog, exits.

gunicorn's master forks the workers; each loads the model in the background. The
readiness counter lives in memory made before the fork (gunicorn_conf), so /ping can
answer 200 only once every worker has the model; a worker started after that replaces
one that died, and loads before it serves (worker.py). A worker that cannot load the
model exits with gunicorn's "failed to boot" code, which stops the whole server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from mlstack.core.waiting import poll
from mlstack.serving.config import Settings

log = logging.getLogger("mlstack.serving")

# gunicorn halts the whole server when a worker exits with this code ("failed to boot").
WORKER_BOOT_ERROR = 3
# A worker whose request overran SAGEMAKER_MODEL_SERVER_TIMEOUT exits with this; gunicorn
# starts a fresh one.
WORKER_TIMEOUT_EXIT = 1


def fatal(message: str) -> None:
    """Print the one error line and stop this worker so that gunicorn stops the server."""
    print(f"mlstack-inference: error: {message}", file=sys.stderr, flush=True)
    os._exit(WORKER_BOOT_ERROR)


def restart_worker(message: str) -> None:
    """Log why and exit this worker; gunicorn's master replaces it."""
    log.error("%s; restarting this worker", message)
    logging.shutdown()
    os._exit(WORKER_TIMEOUT_EXIT)


class Watchdog:
    """Ends a worker whose request runs past the timeout.

    gunicorn's own timeout only restarts workers whose event loop stops; the
    workers predict on their own thread and keep the loop going, so the
    SAGEMAKER_MODEL_SERVER_TIMEOUT budget per invocation is enforced here.
    """

    def __init__(self, timeout: float, on_expired: Callable[[str], None] = restart_worker) -> None:
        self.timeout = timeout
        self.on_expired = on_expired
        self.running: dict[int, float] = {}

    def started(self) -> None:
        self.running[threading.get_ident()] = time.monotonic()

    def finished(self) -> None:
        self.running.pop(threading.get_ident(), None)

    def check(self) -> bool:
        """Call on_expired (and return True) if a request has run past the timeout."""
        now = time.monotonic()
        for started in list(self.running.values()):
            if now - started > self.timeout:
                self.on_expired(
                    f"an invocation ran longer than SAGEMAKER_MODEL_SERVER_TIMEOUT="
                    f"{self.timeout:g} s"
                )
                return True
        return False

    def start(self, interval: float = 1.0) -> threading.Thread:
        """Check in a daemon thread every `interval` seconds, until a check expires one."""
        thread = threading.Thread(
            target=poll,
            args=(lambda: True if self.check() else None, None, interval),
            name="invocation-watchdog",
            daemon=True,
        )
        thread.start()
        return thread


class Readiness:
    """How many workers have loaded the model, in memory shared across gunicorn's fork."""

    def __init__(self, expected: int = 1, counter: Any = None) -> None:
        self.expected = expected
        self.counter = counter if counter is not None else multiprocessing.Value("i", 0)
        self._all_loaded = False
        # Every worker had loaded the model before this one started: this one replaces
        # a worker that died, and should take no connection until it has the model too.
        self.was_ready = self.counter.value >= expected

    def mark_loaded(self) -> None:
        """Count this worker in (a restarted worker counts again; more is still ready)."""
        with self.counter.get_lock():
            self.counter.value += 1

    def all_loaded(self) -> bool:
        """True once `expected` workers have loaded the model; it stays true."""
        if not self._all_loaded:
            self._all_loaded = self.counter.value >= self.expected
        return self._all_loaded

    def describe(self) -> str:
        return f"{self.counter.value} of {self.expected} workers have loaded the model"


def shared_readiness(settings: Settings) -> Readiness:
    """The counter gunicorn's master made before forking (see gunicorn_conf), if any."""
    conf = sys.modules.get("mlstack.serving.gunicorn_conf")
    counter = getattr(conf, "loaded_workers", None)
    if counter is None:
        return Readiness()
    return Readiness(settings.workers, counter)
