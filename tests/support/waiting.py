"""One way to wait in the tests: poll a check until it holds, within a bound (tenacity)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_delay,
    stop_any,
    wait_fixed,
)

T = TypeVar("T")


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
    stops = [stop_after_delay(timeout)]
    if give_up is not None:
        stops.append(lambda _state: give_up())

    def fail(state: RetryCallState) -> T:
        text = message() if callable(message) else message
        waited = f"{text} (waited {state.seconds_since_start:.1f} s of {timeout:g} s)"
        if state.outcome is not None and state.outcome.failed:
            error = state.outcome.exception()
            raise TimeoutError(f"{waited}; last error: {error!r}") from error
        raise TimeoutError(waited)

    retrying = Retrying(
        stop=stop_any(*stops),
        wait=wait_fixed(every),
        retry=retry_if_result(lambda result: not result) | retry_if_exception_type(ignoring),
        retry_error_callback=fail,
    )
    return retrying(check)


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
