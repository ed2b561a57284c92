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
run on the worker's single prediction thread. /ping therefore never queues
behind a slow prediction or a slow upload (a thread per request would: every
thread can be held by a client that sends its body slowly), and a body that does
not arrive within INFERENCE_BODY_TIMEOUT is answered 408 and its connection
closed, so no client holds a worker. The one exception is work known to be
short: a small body (INLINE_MAX_BYTES) that the fast path answers for a few rows
is parsed and predicted on the loop itself, where handing it to the thread would
cost more than the work (scheduling.py). Requests that arrive together are
predicted together where that is proven exact (batching.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlstack.core.errors import StartupError
from mlstack.serving import capture, decoder, encoder, metrics, threads
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
from mlstack.serving.predictor import FAST, Predictor, Prepared
from mlstack.serving.scheduling import LoopBatch, PredictionThread

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
# Bodies up to this size, answered by the fast path for up to INLINE_MAX_ROWS rows, are
# parsed and predicted on the event loop (well under a millisecond each).
INLINE_MAX_BYTES = 16 * 1024
INLINE_MAX_ROWS = 32


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


@dataclass
class Invocation:
    """A POST /invocations whose body has been read."""

    headers: Mapping[str, str]
    body: bytes


@dataclass
class Begun:
    """An invocation checked and prepared, waiting for the model; `output` is its answer's
    media type."""

    work: Prepared
    output: str


def internal_error(method: str, path: str, error: BaseException) -> Response:
    """Our bug (or the model's), not the client's: the traceback goes to the log under an id
    the client sees; the message says nothing of the server's internals."""
    request_id = uuid.uuid4().hex[:12]
    log.error("%s %s failed (error id %s)", method, path, request_id, exc_info=error)
    message = (
        f"internal error (error id {request_id}): the server failed on this request; "
        "its log has the details"
    )
    return Response(500, JSON, encoder.error_body(ERROR_CODES[500], message))


def load_from_settings(settings: Settings) -> Predictor:
    """Resolve the model source and load it (what each worker does at start)."""
    from mlstack.serving.model_source import resolve_model_dir
    from mlstack.serving.predictor import load_predictor

    model_dir = resolve_model_dir(settings)
    log.info("loading the MLflow model in %s", model_dir)
    predictor = load_predictor(
        model_dir, fast_path=settings.fast_path, batch_max_rows=settings.batch_max_rows
    )
    count = threads.threads_per_worker(
        settings.workers, settings.model_threads, threads.available_cpus()
    )
    try:
        log.info("native thread pools in this worker: %s", threads.limit_loaded_pools(count))
    except ImportError:  # a model venv without threadpoolctl: the variables alone apply
        log.info("native thread pools: threadpoolctl is not installed; OMP_NUM_THREADS etc. apply")
    return predictor


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
        # One prediction thread per worker: the work is CPU-bound under the GIL,
        # and more threads only queue requests behind each other (measured on
        # 2 cores: p99 10 ms with one thread, 20 ms with two, 650 ms with four).
        wait = settings.batch_wait_ms / 1000
        self.thread: PredictionThread[Invocation | Begun, Response] = PredictionThread(
            self._watched, settings.batch_max_rows, wait
        )
        self.loop_batch: LoopBatch[Begun, Response] = LoopBatch(
            self._process, settings.batch_max_rows, wait
        )
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
        # Group requests only for routes proven to batch: otherwise each is answered alone.
        routes = predictor.proven
        self.thread.max_items = self.settings.batch_max_rows if routes else 1
        self.loop_batch.max_items = self.settings.batch_max_rows if FAST in routes else 1
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
            log.info(
                "model ready; fast path %s; generic path %s; batching %s",
                predictor.fast_path_note,
                predictor.generic_note,
                predictor.batching_note,
            )
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
        except Exception as error:
            return internal_error(method, path, error)

    def ping(self) -> Response:
        """200 once every worker has loaded the model, 503 before."""
        if not self.loaded.is_set():
            raise ModelNotReady("the model is still loading")
        if not self.readiness.all_loaded():
            raise ModelNotReady(f"the model is still loading: {self.readiness.describe()}")
        return Response(200, JSON, self.ping_body)

    def invocations(self, headers: Mapping[str, str], body: bytes) -> Response:
        """Predict: parse, check against the signature, predict, format."""
        return self._watched([Invocation(headers, body)])[0]

    def _watched(self, items: list[Invocation | Begun]) -> list[Response]:
        """_process under the watchdog (SAGEMAKER_MODEL_SERVER_TIMEOUT)."""
        self.watchdog.started()
        try:
            return self._process(items)
        finally:
            self.watchdog.finished()

    def _process(self, items: list[Invocation | Begun]) -> list[Response]:
        """The answers to invocations handed over together; the model is called once per
        batch of them (Predictor.run_many)."""
        answers: list[Response | Begun] = [
            item if isinstance(item, Begun) else self._begin(item) for item in items
        ]
        begun = [(index, item) for index, item in enumerate(answers) if isinstance(item, Begun)]
        if begun:
            predictor = self.predictor
            assert predictor is not None
            try:
                outcomes = predictor.run_many([item.work for _, item in begun])
            except Exception as error:  # our bug: every request of the group gets the 500
                outcomes = [error] * len(begun)
            for (index, item), outcome in zip(begun, outcomes, strict=True):
                answers[index] = self._finish(item, outcome)
        return [answer for answer in answers if isinstance(answer, Response)]

    def _begin(self, invocation: Invocation) -> Response | Begun:
        """Parse and check an invocation; its error answer, or the work for the model."""
        try:
            return self._prepare(invocation.headers, invocation.body)
        except RequestError as error:
            return error_response(error)
        except Exception as error:
            return internal_error("POST", "/invocations", error)

    def _prepare(self, headers: Mapping[str, str], body: bytes) -> Begun:
        predictor = self.predictor
        if predictor is None:
            raise ModelNotReady("the model is still loading; retry when /ping answers 200")
        media, params = parse_content_type(headers.get("content-type"))
        default_output = media if self.settings.batch else JSON
        output = choose_output(headers.get("accept"), default_output)
        if not body or body.isspace():
            raise BadRequest(f"the request body is empty: send {media} rows to predict")
        limits = self.settings.limits
        if media == JSON:
            parsed = decoder.parse_json(body, params.get("format"), limits, predictor.table_schema)
        else:
            parsed = decoder.parse_csv(body, predictor.column_names, limits)
        return Begun(predictor.prepare(parsed), output)

    @staticmethod
    def _finish(begun: Begun, outcome: Any) -> Response:
        """The answer for one invocation from its predictions, or from the error they raised."""
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            if begun.output == CSV:
                return Response(200, CSV, encoder.csv_predictions(outcome))
            return Response(200, JSON, encoder.json_predictions(outcome))
        except RequestError as error:
            return error_response(error)
        except Exception as error:
            return internal_error("POST", "/invocations", error)

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
        response = await self._predict(Invocation(headers, body))
        self.capture.offer(headers, body, response)  # queued only: capture.py
        return response

    async def _predict(self, invocation: Invocation) -> Response:
        """The answer, on the event loop (small fast-path requests, batched) or on the
        worker's prediction thread."""
        if self.predictor.fast is None or len(invocation.body) > INLINE_MAX_BYTES:
            return await self.thread.submit(invocation)
        begun = self._begin(invocation)
        if isinstance(begun, Response):
            return begun
        if begun.work.route == FAST and begun.work.rows <= INLINE_MAX_ROWS:
            return await self.loop_batch.submit(begun)
        return await self.thread.submit(begun)

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
