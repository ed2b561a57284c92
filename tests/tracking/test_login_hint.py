"""A refused login's answer names where to find the right one (MLFLOW_AUTH_LOGIN_HINT); no
other answer changes. In process, through the ASGI middleware; the local stack's real 401
is checked in tests/compose/test_local_stack.py."""

from __future__ import annotations

import asyncio

import pytest

from mlstack.tracking.login_hint import LoginHint

HINT = "On the local stack, `mlstack local login` prints it."
REFUSAL = b"You are not authenticated. Please see https://mlflow.org/auth on how to authenticate."


def app_answering(status: int, body: bytes, content_type: bytes = b"text/plain"):
    async def app(scope, receive, send):
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body[:10], "more_body": True})
        await send({"type": "http.response.body", "body": body[10:], "more_body": False})

    return app


def call(app) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(app({"type": "http", "path": "/"}, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), body


def test_a_refused_login_ends_with_the_hint() -> None:
    status, headers, body = call(LoginHint(app_answering(401, REFUSAL), HINT))
    assert status == 401
    assert body == REFUSAL + b" " + HINT.encode()
    assert int(headers[b"content-length"]) == len(body)


@pytest.mark.parametrize(
    ("status", "content_type", "hint"),
    [(200, b"text/plain", HINT), (401, b"application/json", HINT), (401, b"text/plain", "")],
    ids=["not a refusal", "not text", "no hint set"],
)
def test_other_answers_are_untouched(status: int, content_type: bytes, hint: str) -> None:
    _, headers, body = call(LoginHint(app_answering(status, REFUSAL, content_type), hint))
    assert body == REFUSAL and int(headers[b"content-length"]) == len(REFUSAL)
