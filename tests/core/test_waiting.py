"""mlstack.core.waiting.poll: the one way to wait, with its bound."""

from __future__ import annotations

import time

import pytest

from mlstack.core.ports import free_port
from mlstack.core.waiting import TimedOut, poll, until_ok
from support.waiting import HANG_S


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
    with pytest.raises(TimedOut, match=r"not done within 0\.3 s"):
        poll(lambda: None, timeout=0.3, interval=0.05)
    assert 0.3 <= time.monotonic() - started < 0.3 + HANG_S  # waited its bound, then gave up


def test_any_other_error_ends_the_wait_at_once():
    calls = []

    def check() -> None:
        calls.append(1)
        raise ValueError("the container stopped")

    with pytest.raises(ValueError, match="container stopped"):
        poll(check, timeout=5, interval=0.01, ignore=(ConnectionError,))
    assert len(calls) == 1


def test_until_ok_waits_for_a_200_and_stops_when_the_server_died():
    import http.server
    import threading

    answers = iter([503, 503, 200])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(next(answers, 200))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/ping"
    try:
        assert 0 <= until_ok(url, timeout=10, interval=0.05) < 10
        with pytest.raises(TimedOut):  # nothing listens there: connection errors, then the bound
            until_ok(f"http://127.0.0.1:{free_port()}/ping", timeout=0.3, interval=0.05)

        def died() -> None:
            raise RuntimeError("container exited")

        with pytest.raises(RuntimeError, match="exited"):
            until_ok(url, timeout=10, interval=0.05, check_alive=died)
    finally:
        server.shutdown()
