"""Request errors: each carries the HTTP status and the JSON message a client gets.

(A problem that stops the server from starting is mlstack.core.errors.StartupError.)"""

from __future__ import annotations


class RequestError(Exception):
    """A request the server answers with a 4xx/5xx status and a JSON message."""

    status = 400
    reason = "Bad Request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(RequestError):
    """Malformed body, missing or unknown columns, wrong types, empty body."""


class RequestTimeout(RequestError):
    status = 408
    reason = "Request Timeout"


class PayloadTooLarge(RequestError):
    status = 413
    reason = "Payload Too Large"


class UnsupportedMediaType(RequestError):
    status = 415
    reason = "Unsupported Media Type"


class NotAcceptable(RequestError):
    status = 406
    reason = "Not Acceptable"


class NotFound(RequestError):
    status = 404
    reason = "Not Found"


class MethodNotAllowed(RequestError):
    status = 405
    reason = "Method Not Allowed"


class ModelNotReady(RequestError):
    status = 503
    reason = "Service Unavailable"
