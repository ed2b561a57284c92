"""The one way the start-up waits: an attempt a second until a deadline (tenacity)."""

from __future__ import annotations

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed


def every_second_for(timeout: float, *retried: type[BaseException]) -> Retrying:
    """Attempts a second, for as long as they raise one of `retried` and `timeout` s have not
    passed; then the last error is raised as it was (anything else is raised at once)."""
    return Retrying(
        retry=retry_if_exception_type(retried),
        stop=stop_after_delay(timeout),
        wait=wait_fixed(1),
        reraise=True,
    )
