"""The one wait helper of the suites (tests/support/waiting.py): bounds and messages."""

from __future__ import annotations

import itertools
import time

import pytest

from support.waiting import HANG_S, seconds_until, wait_until


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
    assert len(calls) == 3
    broken = []

    def bug() -> int:
        broken.append(1)
        return int("a bug")

    with pytest.raises(ValueError, match="a bug"):
        wait_until(bug, timeout=5, every=0.01, ignoring=(ConnectionError,))
    assert broken == [1]  # propagated on the first call, never retried


def test_the_bound_holds_and_the_message_says_what_never_came() -> None:
    calls = []

    def never() -> bool:
        calls.append(time.monotonic())
        return False

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"no row \(waited 0\.\d s of 0\.3 s\)"):
        wait_until(never, timeout=0.3, every=0.05, message=lambda: "no row")
    assert 0.3 <= time.monotonic() - started < 0.3 + HANG_S  # waited the bound, then gave up
    # Asked again and again, never faster than `every` (a slow machine only asks less often).
    assert 2 <= len(calls) <= round(0.3 / 0.05) + 1
    assert all(b - a >= 0.05 * 0.9 for a, b in itertools.pairwise(calls))
    with pytest.raises(TimeoutError, match="last error: ConnectionError"):
        wait_until(_refused, timeout=0.2, every=0.05, ignoring=(ConnectionError,))


def test_give_up_stops_before_the_bound() -> None:
    calls = []

    def never() -> bool:
        calls.append(1)
        return False

    with pytest.raises(TimeoutError, match=r"exited \(waited 0\.\d s of 30 s\)"):
        wait_until(never, timeout=30, every=0.01, give_up=lambda: True, message="exited")
    assert calls == [1]  # asked once, then gave up at the first look at give_up
    assert seconds_until(lambda: True, timeout=1) < 1  # a true answer ends the wait at once


def _refused() -> bool:
    raise ConnectionError("refused")
