"""The one wait helper of the suites (tests/support/waiting.py): bounds and messages."""

from __future__ import annotations

import time

import pytest

from support.waiting import seconds_until, wait_until


def test_returns_the_first_truthy_answer() -> None:
    answers = iter([None, [], ["row"]])
    assert wait_until(lambda: next(answers), timeout=5, every=0.01) == ["row"]


def test_ignored_errors_are_not_yet_and_others_propagate_at_once() -> None:
    calls = []

    def flaky() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return True

    assert wait_until(flaky, timeout=5, every=0.01, ignoring=(ConnectionError,))
    started = time.monotonic()
    with pytest.raises(ValueError, match="a bug"):
        wait_until(lambda: int("a bug"), timeout=5, every=0.01, ignoring=(ConnectionError,))
    assert time.monotonic() - started < 1


def test_the_bound_holds_and_the_message_says_what_never_came() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no row \(waited 0\.\d s of 0\.3 s\)"):
        wait_until(lambda: False, timeout=0.3, every=0.05, message=lambda: "no row")
    assert 0.3 <= time.monotonic() - started < 1.5
    with pytest.raises(TimeoutError, match="last error: ConnectionError"):
        wait_until(_refused, timeout=0.2, every=0.05, ignoring=(ConnectionError,))


def test_give_up_stops_before_the_bound() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="exited"):
        wait_until(lambda: False, timeout=30, every=0.01, give_up=lambda: True, message="exited")
    assert time.monotonic() - started < 1
    assert seconds_until(lambda: True, timeout=1) < 0.5


def _refused() -> bool:
    raise ConnectionError("refused")
