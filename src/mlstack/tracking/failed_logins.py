"""Refused logins are answered late, later the more of them come: guessing is slowed.

A request that carried Basic credentials and is answered 401 (wrong password, unknown
user) waits DELAY_STEP_S for each refusal of the same user name, or from the same client
address, in a row (counted while they come less than FAILURE_MEMORY_S apart), up to
MAX_DELAY_S, before its answer is sent. The wait holds no thread and no CPU: it is an
await in front of MLflow's app, after MLflow has refused. Accepted logins never wait, so
a user's own login is not locked out by someone guessing at their name; and since only
answers are delayed, many guesses in parallel are bounded, as before, by the full password
check each one costs (failures are never remembered: credentials.py).
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
from cachetools import TTLCache

DELAY_STEP_S = 0.25
MAX_DELAY_S = 3.0
FAILURE_MEMORY_S = 60
CAPACITY = 10000  # names and addresses tracked at once; the oldest are forgotten past it
CREDENTIAL_HEADERS = (b"authorization", b"x-mlflow-authorization")  # the latter: /gateway/


def basic_username(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The user name of the request's Basic credentials, or None when it carried none."""
    for name, value in headers:
        if name.lower() not in CREDENTIAL_HEADERS:
            continue
        scheme, _, encoded = value.partition(b" ")
        if scheme.lower() != b"basic":
            continue
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return ""  # credentials MLflow cannot read: refused, and counted by address
        return decoded.partition(b":")[0].decode("utf-8", "replace")
    return None


class FailedLoginDelay:
    """ASGI middleware delaying 401 answers to requests that tried to log in."""

    def __init__(
        self,
        app: Any,
        step_s: float = DELAY_STEP_S,
        max_delay_s: float = MAX_DELAY_S,
        memory_s: float = FAILURE_MEMORY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.step_s = step_s
        self.max_delay_s = max_delay_s
        # A key's count lives while its refusals come less than memory_s apart.
        self._failures: TTLCache[tuple[str, str], int] = TTLCache(CAPACITY, memory_s, clock)
        self._lock = threading.Lock()

    def delay_after_failure(self, keys: list[tuple[str, str]]) -> float:
        """Count one refusal for each key; the wait for it, from the most refused key."""
        with self._lock:
            counts = []
            for key in keys:
                self._failures[key] = self._failures.get(key, 0) + 1
                counts.append(self._failures[key])
        return min(self.step_s * max(counts), self.max_delay_s)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        username = basic_username(scope.get("headers") or [])
        if username is None:  # no login tried: a 401 here is the login prompt, at once
            await self.app(scope, receive, send)
            return
        keys = [("user", username)]
        if scope.get("client"):
            keys.append(("client", scope["client"][0]))

        async def send_refusals_late(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                await anyio.sleep(self.delay_after_failure(keys))
            await send(message)

        await self.app(scope, receive, send_refusals_late)
