"""The one way mlstack waits, on tenacity, always within a bound (unless told it has none).

- `poll(check, ...)`: call a check until it returns something other than None.
- `attempts(timeout, *errors)`: retry a block, an attempt a second, while it raises one of
  `errors`; the last error is raised as it was once the time is up.
- `until_ok(url, ...)`: wait until a server's /ping or /health answers 200.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    stop_any,
    stop_never,
    wait_fixed,
)

T = TypeVar("T")


class TimedOut(Exception):
    """The check did not succeed within the bound; `last_error` is the last ignored error."""

    def __init__(self, message: str, waited: float, last_error: BaseException | None) -> None:
        super().__init__(message)
        self.waited = waited
        self.last_error = last_error


def poll(
    check: Callable[[], T | None],
    timeout: float | None,
    interval: float,
    ignore: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], bool] | None = None,
) -> T:
    """Call check every `interval` seconds until it returns something other than None; return
    that. Exceptions in `ignore` count as not yet; any other ends the wait at once, as it is.
    TimedOut after `timeout` seconds (None: no bound, for what ends by itself), or as soon as
    `give_up()` is true (what should answer has died: no point waiting)."""
    stops = [stop_after_delay(timeout) if timeout is not None else stop_never]
    if give_up is not None:
        stops.append(lambda _state: give_up())

    def timed_out(state: RetryCallState) -> T:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        bound = "no bound" if timeout is None else f"{timeout:g} s"
        raise TimedOut(
            f"not done within {bound}", state.seconds_since_start or 0.0, error
        ) from error

    retrying = Retrying(
        stop=stop_any(*stops),
        wait=wait_fixed(interval),
        retry=retry_if_result(lambda result: result is None) | retry_if_exception_type(ignore),
        retry_error_callback=timed_out,
    )
    return retrying(check)


def attempts(timeout: float, *retried: type[BaseException], interval: float = 1.0) -> Retrying:
    """Attempts every `interval` seconds, for as long as they raise one of `retried` and
    `timeout` seconds have not passed; then the last error is raised as it was (anything else
    is raised at once). Use as `for attempt in attempts(...): with attempt:`, each attempt
    bounding its own wait by what is left of the timeout."""
    return Retrying(
        retry=retry_if_exception_type(retried),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(interval),
        reraise=True,
    )


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
