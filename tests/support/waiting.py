"""Waiting in the tests: the product's one wait (mlstack.core.waiting.poll), with the
tests' truthiness and a TimeoutError that says what never held."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from mlstack.core.waiting import TimedOut, poll

T = TypeVar("T")

# A wait that should end on its own and has not after this many seconds past its own bound
# hangs: a busy 2-core machine is slow by seconds, not by this much. Tests check behaviour
# (it waited its bound, it gave up with the right words) and use this only to tell a hang.
HANG_S = 30.0


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float,
    every: float = 0.5,
    ignoring: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], bool] | None = None,
    message: str | Callable[[], str] = "the condition never held",
) -> T:
    """Call `check` every `every` seconds until it returns something truthy; return that.

    An exception of a type in `ignoring` counts as "not yet" (a refused connection while a
    server starts); any other exception propagates at once. After `timeout` seconds, or as soon
    as `give_up()` is true (the container exited: no point waiting), raise TimeoutError with
    `message`, called then when it is a callable so it can show the latest logs.
    """
    try:
        return poll(lambda: check() or None, timeout, every, ignoring, give_up)
    except TimedOut as stopped:
        text = message() if callable(message) else message
        waited = f"{text} (waited {stopped.waited:.1f} s of {timeout:g} s)"
        if stopped.last_error is not None:
            raise TimeoutError(f"{waited}; last error: {stopped.last_error!r}") from stopped
        raise TimeoutError(waited) from None


def seconds_until(check: Callable[[], object], **bounds: Any) -> float:
    """Seconds `wait_until(check, **bounds)` took."""
    started = time.monotonic()
    wait_until(check, **bounds)
    return time.monotonic() - started


def answers_200(url: str, timeout: float = 2) -> bool:
    """Whether GET url answers 200 now (a connection error propagates)."""
    return requests.get(url, timeout=timeout).status_code == 200


def wait_for_http(
    url: str, *, timeout: float, every: float = 0.5, request_timeout: float = 2, **bounds: Any
) -> float:
    """Seconds until GET url answers 200; refused connections and timeouts count as not yet.

    `bounds` are wait_until's `give_up` and `message`.
    """
    return seconds_until(
        lambda: answers_200(url, request_timeout),
        timeout=timeout,
        every=every,
        ignoring=(requests.RequestException,),
        **{"message": f"{url} did not answer 200", **bounds},
    )
