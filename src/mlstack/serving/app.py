"""The ASGI app: SageMaker's /ping, /invocations and /execution-parameters.

Contract (SageMaker "use your own inference code with hosting services" and
batch transform): GET /ping answers 200 once the model is loaded, within 2 s;
POST /invocations answers within 60 s; GET /execution-parameters tells batch
transform how to call. Each worker loads the model in a background thread, so
/ping answers 503 (not a refused connection) while it loads, and 200 only once
every worker has loaded it (a counter shared by the workers), so that traffic
never reaches a worker still loading; a model that cannot be loaded stops the
server with one error line.

Why ASGI on an event loop (uvicorn workers under gunicorn, see gunicorn_conf):
each worker's loop reads requests and answers /ping itself, while predictions
run one at a time on the worker's single prediction thread. /ping therefore
never queues behind a slow prediction or a slow upload (a thread per request
would: every thread can be held by a client that sends its body slowly), and a
body that does not arrive within INFERENCE_BODY_TIMEOUT is answered 408 and its
connection closed, so no client holds a worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlstack.core.errors import StartupError
from mlstack.serving import capture, decoder, encoder, metrics
from mlstack.serving.config import Settings, load_settings
from mlstack.serving.content_types import CSV, JSON, choose_output, parse_content_type
from mlstack.serving.errors import (
    BadRequest,
    MethodNotAllowed,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
)
from mlstack.serving.lifecycle import Readiness, Watchdog, fatal, shared_readiness
from mlstack.serving.predictor import Predictor

Loader = Callable[[Settings], Predictor]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("mlstack.serving")

CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
    503: "MODEL_NOT_READY",
}


@dataclass
class Response:
    """One answer: status, content type, body and any extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False


def error_response(error: RequestError, extra: list[tuple[str, str]] | None = None) -> Response:
    """The JSON error answer for a request error."""
    body = encoder.error_body(ERROR_CODES[error.status], error.message)
    return Response(error.status, JSON, body, list(extra or []))


def load_from_settings(settings: Settings) -> Predictor:
    """Resolve the model source and load it (what each worker does at start)."""
    from mlstack.serving.model_source import resolve_model_dir
    from mlstack.serving.predictor import load_predictor

    model_dir = resolve_model_dir(settings)
    log.info("loading the MLflow model in %s", model_dir)
    return load_predictor(model_dir, fast_path=settings.fast_path)


class InferenceApp:
    """An ASGI callable; the model arrives from a loader thread started by start_loading."""

    def __init__(
        self,
        settings: Settings,
        readiness: Readiness | None = None,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.settings = settings
        self.readiness = readiness or Readiness()
        self.watchdog = watchdog or Watchdog(settings.timeout)
        self.predictor: Predictor | None = None
        self.loaded = threading.Event()
        self.ping_body = b""
        # One prediction at a time per worker: the work is CPU-bound under the GIL,
        # and more threads only queue requests behind each other (measured on
        # 2 cores: p99 10 ms with one thread, 20 ms with two, 650 ms with four).
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        self.metrics = metrics.for_port(settings.metrics_port)
        self.capture = capture.for_config(settings.capture, self.metrics.capture)
        self.execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": settings.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": settings.max_payload_mb,
            }
        ).encode()
        self.routes: dict[str, tuple[str, ...]] = {
            "/ping": ("GET", "HEAD"),
            "/invocations": ("POST",),
            "/execution-parameters": ("GET",),
            # Ours, not SageMaker's: the model's environment next to the image's (model_env).
            "/environment": ("GET",),
        }

    # --- loading ---------------------------------------------------------------------------

    def set_predictor(self, predictor: Predictor) -> None:
        """Make the app serve this predictor."""
        self.predictor = predictor
        self.ping_body = json.dumps(
            {"status": "ready", "fast_path": predictor.fast_path_note}
        ).encode()
        self.loaded.set()
        self.readiness.mark_loaded()

    def start_loading(
        self, loader: Loader = load_from_settings, on_error: Callable[[str], None] = fatal
    ) -> threading.Thread:
        """Load the model in a daemon thread; on failure call on_error with one line."""

        def run() -> None:
            started = time.perf_counter()
            try:
                predictor = loader(self.settings)
            except StartupError as error:
                on_error(str(error))
                return
            except Exception as error:
                log.exception("loading the model failed")
                on_error(f"cannot load the model: {type(error).__name__}: {error}")
                return
            log.info("model ready; fast path %s", predictor.fast_path_note)
            self.metrics.model_loaded(time.perf_counter() - started)
            self.set_predictor(predictor)

        thread = threading.Thread(target=run, name="model-loader", daemon=True)
        thread.start()
        return thread

    # --- requests, whole (the ASGI layer below reads them) ------------------------------------

    def respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Response:
        """The answer to one request whose body has been read; never raises."""
        request_id = ""
        try:
            methods = self.routes.get(path)
            if methods is None:
                raise NotFound(
                    f"no route {path!r}: use /ping, /invocations, /execution-parameters, "
                    "/environment"
                )
            if method not in methods:
                error = MethodNotAllowed(f"{path} takes {' or '.join(methods)}, not {method}")
                return error_response(error, [("Allow", ", ".join(methods))])
            if path == "/ping":
                return self.ping()
            if path == "/execution-parameters":
                return Response(200, JSON, self.execution_parameters)
            if path == "/environment":
                return Response(200, JSON, self.settings.model_report.encode())
            return self.invocations(headers, body)
        except RequestError as error:
            if error.status == 413:
                log.warning("%s %s: %d %s", method, path, error.status, error.message)
            return error_response(error)
        except Exception:
            # Our bug, not the client's: the traceback goes to the log under an id the
            # client sees; the message says nothing of the server's internals.
            request_id = uuid.uuid4().hex[:12]
            log.exception("%s %s failed (error id %s)", method, path, request_id)
            message = (
                f"internal error (error id {request_id}): the server failed on this request; "
                "its log has the details"
            )
            return Response(500, JSON, encoder.error_body(ERROR_CODES[500], message))

    def ping(self) -> Response:
        """200 once every worker has loaded the model, 503 before."""
        if not self.loaded.is_set():
            raise ModelNotReady("the model is still loading")
        if not self.readiness.all_loaded():
            raise ModelNotReady(f"the model is still loading: {self.readiness.describe()}")
        return Response(200, JSON, self.ping_body)

    def invocations(self, headers: Mapping[str, str], body: bytes) -> Response:
        """Predict: parse, check against the signature, predict, format."""
        self.watchdog.started()
        try:
            return self._invocations(headers, body)
        finally:
            self.watchdog.finished()

    def _invocations(self, headers: Mapping[str, str], body: bytes) -> Response:
        predictor = self.predictor
        if predictor is None:
            raise ModelNotReady("the model is still loading; retry when /ping answers 200")
        media, params = parse_content_type(headers.get("content-type"))
        default_output = media if self.settings.batch else JSON
        output = choose_output(headers.get("accept"), default_output)
        if not body.strip():
            raise BadRequest(f"the request body is empty: send {media} rows to predict")
        limits = self.settings.limits
        if media == JSON:
            parsed = decoder.parse_json(body, params.get("format"), limits, predictor.table_schema)
        else:
            parsed = decoder.parse_csv(body, predictor.column_names, limits)
        predictions = predictor.predict(parsed)
        if output == CSV:
            return Response(200, CSV, encoder.csv_predictions(predictions))
        return Response(200, JSON, encoder.json_predictions(predictions))

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.close)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        method, path = scope["method"], scope["path"]
        if path == "/invocations" and method == "POST":
            response = await self._invoke(headers, receive)
        else:
            response = self.respond(method, path, headers)
        await _send(send, response, headers.get(CUSTOM_ATTRIBUTES), method == "HEAD")
        self.metrics.answered(path, response.status, started)

    async def _invoke(self, headers: Mapping[str, str], receive: Receive) -> Response:
        """Read the body (bounded in size and time), then predict on the worker's thread."""
        if self.predictor is None:
            return error_response(
                ModelNotReady("the model is still loading; retry when /ping answers 200")
            )
        try:
            body = await self._read_body(headers, receive)
        except RequestTimeout as error:
            log.warning("POST /invocations: %d %s", error.status, error.message)
            return _closing(error_response(error))
        except RequestError as error:
            # uvicorn discards the rest of the body and keeps the connection, so the
            # client, still sending, reads this answer rather than a reset.
            log.warning("POST /invocations: %d %s", error.status, error.message)
            return error_response(error)
        loop = asyncio.get_running_loop()
        response = await loop.run_in_executor(
            self.executor, self.respond, "POST", "/invocations", headers, body
        )
        self.capture.offer(headers, body, response)  # queued only: capture.py
        return response

    def close(self) -> None:
        """At the worker's graceful stop (ASGI lifespan shutdown): write what capture has
        queued."""
        self.capture.close()

    async def _read_body(self, headers: Mapping[str, str], receive: Receive) -> bytes:
        limit = self.settings.max_payload_bytes
        too_large = PayloadTooLarge(
            f"the body is larger than SAGEMAKER_MAX_PAYLOAD_IN_MB={self.settings.max_payload_mb} "
            f"MB ({limit} bytes): split it into smaller requests"
        )
        raw_length = headers.get("content-length", "")
        if raw_length:
            try:
                length = int(raw_length)
            except ValueError:
                raise BadRequest(f"invalid Content-Length {raw_length[:40]!r}") from None
            if limit is not None and length > limit:
                raise too_large
        chunks: list[bytes] = []
        size = 0
        timeout = self.settings.body_timeout
        try:
            async with asyncio.timeout(timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise BadRequest("the client went away before sending the whole body")
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise RequestTimeout(
                f"the body did not arrive within INFERENCE_BODY_TIMEOUT={timeout} s "
                f"({size} bytes came): send it faster or in smaller requests"
            ) from None


def _closing(response: Response) -> Response:
    """Close the connection after this answer: a client this slow is not kept."""
    response.close = True
    return response


async def _lifespan(receive: Receive, send: Send, on_shutdown: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            # uvicorn's graceful stop has answered every request in flight: write what data
            # capture still holds before the worker exits (off the loop: it may upload).
            await asyncio.get_running_loop().run_in_executor(None, on_shutdown)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send(send: Send, response: Response, attributes: str | None, head: bool) -> None:
    headers = [
        (b"content-type", response.content_type.encode()),
        (b"content-length", str(len(response.body)).encode()),
    ]
    headers += [(name.lower().encode(), value.encode()) for name, value in response.headers]
    # InvokeEndpoint's CustomAttributes reach the container as this header; a container
    # may answer with its own, which SageMaker hands back to the caller. We echo it.
    if attributes is not None:
        headers.append((CUSTOM_ATTRIBUTES.encode(), attributes.encode("latin-1")))
    if response.close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else response.body})


def create_app(settings: Settings | None = None, loader: Loader | None = None) -> InferenceApp:
    """gunicorn's app factory: one app per worker, loading the model in the background."""
    settings = settings or load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    app = InferenceApp(settings, shared_readiness(settings))
    app.start_loading(loader or load_from_settings)
    app.watchdog.start()
    return app
