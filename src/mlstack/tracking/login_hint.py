"""A refused login says where the right one is: MLflow's 401 answer ("You are not
authenticated ...") with MLFLOW_AUTH_LOGIN_HINT appended, for the deployment to name its own
way of logging in. The local stack's names `mlstack local login`: a user's MLflow client
then ends its traceback with the command that prints the credentials.

Only 401 answers with a text body are touched (MLflow's basic-auth sends them so); they are
small, so their body is read whole, the hint added and Content-Length set again.
"""

from __future__ import annotations

from typing import Any

UNAUTHORIZED = 401


class LoginHint:
    """ASGI middleware appending the hint to the text of 401 answers."""

    def __init__(self, app: Any, hint: str) -> None:
        self.app = app
        self.hint = hint.strip()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.hint:
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}

        async def hinted(message: dict) -> None:
            if message["type"] == "http.response.start":
                if message["status"] == UNAUTHORIZED and is_text(message):
                    held["start"], held["body"] = message, b""
                    return
                await send(message)
                return
            if "start" not in held:
                await send(message)
                return
            held["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            body = held["body"].rstrip() + f" {self.hint}".encode()
            await send(with_length(held["start"], len(body)))
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, hinted)


def is_text(start: dict) -> bool:
    """Whether a response's headers say its body is plain text."""
    for name, value in start.get("headers", []):
        if name.lower() == b"content-type":
            return value.lower().startswith(b"text/")
    return False


def with_length(start: dict, length: int) -> dict:
    """The response start with its Content-Length set to length."""
    headers = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"]
    return {**start, "headers": [*headers, (b"content-length", str(length).encode())]}
