"""The gunicorn worker: uvicorn's event loop serving the ASGI app (see app.py for why).

gunicorn stays the process manager (worker restarts, timeouts, graceful stop,
the readiness counter made before the fork); uvicorn, with httptools and uvloop,
reads the requests. A worker that replaces a dead one loads the model before it
takes a connection, so while it loads the other workers answer everything and
/ping never says 200 from a worker that cannot predict.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker


class InferenceWorker(UvicornWorker):
    """UvicornWorker with the image's uvicorn settings and load-before-serve on restarts."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "uvloop",
        "http": "httptools",
        # Startup completes at once: the app loads its model itself (a background thread, so
        # /ping can say 503). Shutdown, after every request in flight is answered, writes what
        # data capture holds: gunicorn's worker_exit never runs here, since uvicorn re-raises
        # SIGTERM once it has stopped serving, and the worker dies of it.
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        # The app reads no client address: no X-Forwarded-For middleware on every request.
        "proxy_headers": False,
    }
    # How often a replacement worker tells the master it is alive while it loads.
    LOAD_HEARTBEAT_SECONDS = 1.0

    def run(self) -> None:
        app = self.wsgi  # the InferenceApp gunicorn loaded in init_process
        if app.readiness.was_ready:
            while self.alive and not app.loaded.wait(self.LOAD_HEARTBEAT_SECONDS):
                self.notify()
            if not self.alive:
                return
        super().run()
