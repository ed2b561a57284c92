"""/ready: whether this server can reach its database now, for load balancers and compose.

/health (MLflow's) stays cheap liveness: the process answers. /ready also asks the
database, with a short timeout, so a load balancer sends requests only to servers that
can serve them. It is answered here, in front of MLflow's app (and its auth), since
health checkers carry no credentials.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import pymysql

from mlstack.tracking import database

log = logging.getLogger(__name__)

READY_PATH = "/ready"
READY_TIMEOUT_S = 2  # each of connect, greeting and query: an answer within about 2-6 s
READY_THREADS = 4


class Readiness:
    """ASGI middleware answering GET /ready; everything else goes to the wrapped app."""

    def __init__(self, app: Any, database_uri: str, timeout: float = READY_TIMEOUT_S) -> None:
        self.app = app
        self.database_uri = database_uri
        self.timeout = timeout
        self._limiter: anyio.CapacityLimiter | None = None

    def check(self) -> str | None:
        """None when the database answers SELECT 1, else why not (no host or credentials)."""
        try:
            database.ping(self.database_uri, self.timeout)
            return None
        except (pymysql.err.MySQLError, OSError) as error:
            code = error.args[0] if error.args and isinstance(error.args[0], int) else None
            return f"database check failed ({type(error).__name__}{f' {code}' if code else ''})"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != READY_PATH:
            await self.app(scope, receive, send)
            return
        # Threads of its own: MLflow's requests may hold every default worker thread while
        # the database hangs, which is when this answer matters most.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(READY_THREADS)
        problem = await anyio.to_thread.run_sync(self.check, limiter=self._limiter)
        if problem:
            log.warning("not ready: %s", problem)
        status = 503 if problem else 200
        body = json.dumps({"ready": not problem, **({"reason": problem} if problem else {})})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
