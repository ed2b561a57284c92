"""mlstack.waiting.poll: the one way to wait, with its bound."""

from __future__ import annotations

import time

import pytest

from mlstack.waiting import TimedOut, poll


def test_returns_the_first_answer_that_is_not_none():
    answers = iter([None, ConnectionError("not yet"), None, "ready"])

    def check() -> str | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert poll(check, timeout=5, interval=0.01, ignore=(ConnectionError,)) == "ready"


def test_gives_up_after_the_bound():
    started = time.monotonic()
    with pytest.raises(TimedOut, match="not done within 0 s"):
        poll(lambda: None, timeout=0.3, interval=0.05)
    assert 0.3 <= time.monotonic() - started < 2


def test_any_other_error_ends_the_wait_at_once():
    calls = []

    def check() -> None:
        calls.append(1)
        raise ValueError("the container stopped")

    with pytest.raises(ValueError, match="container stopped"):
        poll(check, timeout=5, interval=0.01, ignore=(ConnectionError,))
    assert len(calls) == 1
