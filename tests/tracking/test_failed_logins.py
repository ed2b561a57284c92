"""Refused logins are answered later the more of them come; nothing else waits.

The middleware in front of a tiny ASGI app that answers 401 or 200 as told; the waits
are recorded (anyio.sleep replaced), not timed.
"""

from __future__ import annotations

import base64

import anyio
import pytest

from mlstack.tracking import failed_logins
from mlstack.tracking.failed_logins import FailedLoginDelay, basic_username


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def basic(user: str, password: str) -> tuple[bytes, bytes]:
    token = base64.b64encode(f"{user}:{password}".encode())
    return (b"authorization", b"Basic " + token)


async def answer(scope: dict, receive, send) -> None:
    """401 when the request's path says so, else 200."""
    status = 401 if scope["path"] == "/refuse" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(failed_logins.anyio, "sleep", sleep)
    return recorded


def request(
    middleware: FailedLoginDelay, path: str, headers: list, client: str = "10.0.0.1"
) -> int:
    sent: list[dict] = []
    scope = {"type": "http", "path": path, "headers": headers, "client": (client, 4000)}

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    anyio.run(middleware, scope, receive, send)
    return sent[0]["status"]


def test_each_refusal_in_a_row_waits_longer_up_to_the_cap(waits: list[float]) -> None:
    middleware = FailedLoginDelay(answer, step_s=0.25, max_delay_s=1.0)
    for attempt in range(6):
        assert request(middleware, "/refuse", [basic("alice", f"guess-{attempt}")]) == 401
    assert waits == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_accepted_logins_and_login_prompts_never_wait(waits: list[float]) -> None:
    middleware = FailedLoginDelay(answer)
    for _ in range(3):
        request(middleware, "/refuse", [basic("alice", "guess")])
    assert request(middleware, "/ok", [basic("alice", "right")]) == 200
    assert request(middleware, "/refuse", []) == 401  # no credentials: the login prompt
    assert len(waits) == 3


def test_guesses_spread_over_names_are_counted_by_client_address(waits: list[float]) -> None:
    middleware = FailedLoginDelay(answer, step_s=0.25)
    for name in ("alice", "bob", "carol"):
        request(middleware, "/refuse", [basic(name, "Summer2025!")])
    assert waits == [0.25, 0.5, 0.75]
    request(middleware, "/refuse", [basic("dave", "x")], client="10.0.0.2")
    assert waits[-1] == 0.25  # another address, another name: a first refusal


def test_a_quiet_minute_forgets_the_count(waits: list[float]) -> None:
    clock = Clock()
    middleware = FailedLoginDelay(answer, step_s=0.25, memory_s=60, clock=clock)
    request(middleware, "/refuse", [basic("alice", "a")])
    clock.now = 59
    request(middleware, "/refuse", [basic("alice", "b")])
    clock.now = 59 + 61
    request(middleware, "/refuse", [basic("alice", "c")])
    assert waits == [0.25, 0.5, 0.25]


@pytest.mark.parametrize(
    ("headers", "name"),
    [
        ([], None),
        ([(b"authorization", b"Bearer abc")], None),
        ([basic("alice", "pw:with:colons")], "alice"),
        ([(b"X-MLflow-Authorization", basic("gw", "p")[1])], "gw"),
        ([(b"authorization", b"Basic !!!not-base64")], ""),
    ],
)
def test_the_user_name_is_read_from_basic_credentials(headers: list, name: str | None) -> None:
    assert basic_username(headers) == name
