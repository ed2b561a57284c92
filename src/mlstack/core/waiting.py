"""The one way scripts/ waits: poll a check until it says done, within a bound (tenacity)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryError,
    Retrying,
    retry_if_result,
    stop_after_delay,
    stop_never,
    wait_fixed,
)

T = TypeVar("T")


class TimedOut(Exception):
    """The check did not succeed within the bound."""


def poll(
    check: Callable[[], T | None],
    timeout: float | None,
    interval: float,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call check every `interval` seconds until it returns something other than None
    (exceptions in `ignore` count as not yet); return that, or raise TimedOut after
    `timeout` seconds (None: no bound, for jobs that end by themselves). Any other
    exception from check ends the wait at once, as it is."""

    def attempt() -> T | None:
        try:
            return check()
        except ignore:
            return None

    stop = stop_after_delay(timeout) if timeout is not None else stop_never
    retrying = Retrying(
        stop=stop, wait=wait_fixed(interval), retry=retry_if_result(lambda result: result is None)
    )
    try:
        return retrying(attempt)
    except RetryError:
        raise TimedOut(f"not done within {timeout:.0f} s") from None


def until_ok(
    url: str,
    timeout: float,
    interval: float,
    check_alive: Callable[[], None] | None = None,
) -> float:
    """Wait until GET url answers 200 (a server's /ping or /health); the seconds it took.

    check_alive raises when what should answer has died (its container exited), which ends
    the wait at once; connection errors count as not yet. TimedOut after timeout seconds."""
    import requests

    started = time.monotonic()

    def answered() -> bool | None:
        if check_alive is not None:
            check_alive()
        return True if requests.get(url, timeout=2).status_code == 200 else None

    poll(answered, timeout, interval, ignore=(requests.RequestException,))
    return time.monotonic() - started
