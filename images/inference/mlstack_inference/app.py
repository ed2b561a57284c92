"""The WSGI app: SageMaker's /ping, /invocations and /execution-parameters.

Contract (SageMaker "use your own inference code with hosting services" and
batch transform): GET /ping answers 200 once the model is loaded, within 2 s;
POST /invocations answers within 60 s; GET /execution-parameters tells batch
transform how to call. Each worker loads the model in a background thread, so
/ping answers 503 (not a refused connection) while it loads, and 200 only once
every worker has loaded it (a counter shared by the workers), so that traffic
never reaches a worker still loading; a model that cannot be loaded stops the
server with one error line.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from mlstack_inference import model_env, payloads
from mlstack_inference.config import Settings, load_settings
from mlstack_inference.errors import (
    BadRequest,
    MethodNotAllowed,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    RequestError,
    StartupError,
)
from mlstack_inference.lifecycle import Readiness, Watchdog, fatal, shared_readiness
from mlstack_inference.predictor import Predictor

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Loader = Callable[[Settings], Predictor]

log = logging.getLogger("mlstack_inference")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
CUSTOM_ATTRIBUTES_ENVIRON = "HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"
ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "ENDPOINT_NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    500: "INTERNAL_ERROR",
    503: "MODEL_NOT_READY",
}
STATUS_LINES = {
    200: "200 OK",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    406: "406 Not Acceptable",
    413: "413 Payload Too Large",
    415: "415 Unsupported Media Type",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


def load_from_settings(settings: Settings) -> Predictor:
    """Resolve the model source and load it (what each worker does at start)."""
    from mlstack_inference.model_source import resolve_model_dir
    from mlstack_inference.predictor import load_predictor

    model_dir = resolve_model_dir(settings)
    log.info("loading the MLflow model in %s", model_dir)
    return load_predictor(model_dir, fast_path=settings.fast_path)


class InferenceApp:
    """A WSGI callable; the model arrives from a loader thread started by start_loading."""

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
        self.execution_parameters = json.dumps(
            {
                "MaxConcurrentTransforms": settings.workers,
                "BatchStrategy": "MULTI_RECORD",
                "MaxPayloadInMB": settings.max_payload_mb,
            }
        ).encode()
        self.routes: dict[str, tuple[tuple[str, ...], Callable[..., tuple[int, str, bytes]]]] = {
            "/ping": (("GET", "HEAD"), self.ping),
            "/invocations": (("POST",), self.invocations),
            "/execution-parameters": (("GET",), self.get_execution_parameters),
            # Ours, not SageMaker's: the model's environment next to the image's (model_env).
            "/environment": (("GET",), self.environment),
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
            self.set_predictor(predictor)

        thread = threading.Thread(target=run, name="model-loader", daemon=True)
        thread.start()
        return thread

    # --- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        extra: list[tuple[str, str]] = []
        try:
            route = self.routes.get(path)
            if route is None:
                raise NotFound(
                    f"no route {path!r}: use /ping, /invocations, /execution-parameters, "
                    "/environment"
                )
            methods, handler = route
            if method not in methods:
                extra.append(("Allow", ", ".join(methods)))
                raise MethodNotAllowed(f"{path} takes {' or '.join(methods)}, not {method}")
            status, content_type, body = handler(environ)
        except RequestError as error:
            if error.status in (413, 500):
                log.warning("%s %s: %d %s", method, path, error.status, error.message)
            status, content_type = error.status, payloads.JSON
            body = payloads.error_body(ERROR_CODES[error.status], error.message)
        except Exception as error:
            log.exception("%s %s failed", method, path)
            status, content_type = 500, payloads.JSON
            body = payloads.error_body(
                ERROR_CODES[500], f"internal error: {type(error).__name__}: {error}"
            )
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        # InvokeEndpoint's CustomAttributes reach the container as this header; a container
        # may answer with its own, which SageMaker hands back to the caller. We echo it.
        attributes = environ.get(CUSTOM_ATTRIBUTES_ENVIRON)
        if attributes is not None:
            headers.append((CUSTOM_ATTRIBUTES, attributes))
        start_response(STATUS_LINES[status], headers + extra)
        return [b""] if method == "HEAD" else [body]

    def ping(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        """200 once every worker has loaded the model, 503 before."""
        if not self.loaded.is_set():
            raise ModelNotReady("the model is still loading")
        if not self.readiness.all_loaded():
            raise ModelNotReady(f"the model is still loading: {self.readiness.describe()}")
        return 200, payloads.JSON, self.ping_body

    def get_execution_parameters(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        """Batch transform's execution parameters."""
        return 200, payloads.JSON, self.execution_parameters

    def environment(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        """The model's environment against the one serving it, as the entrypoint found it."""
        return 200, payloads.JSON, model_env.report()

    def invocations(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        """Predict: parse, check against the signature, predict, format."""
        self.watchdog.started()
        try:
            return self._invocations(environ)
        finally:
            self.watchdog.finished()

    def _invocations(self, environ: dict[str, Any]) -> tuple[int, str, bytes]:
        predictor = self.predictor
        if predictor is None:
            raise ModelNotReady("the model is still loading; retry when /ping answers 200")
        media, params = payloads.parse_content_type(environ.get("CONTENT_TYPE"))
        default_output = media if self.settings.batch else payloads.JSON
        output = payloads.choose_output(environ.get("HTTP_ACCEPT"), default_output)
        body = self._read_body(environ)
        if not body.strip():
            raise BadRequest(f"the request body is empty: send {media} rows to predict")
        if media == payloads.JSON:
            parsed = payloads.parse_json(body, params.get("format"))
        else:
            parsed = payloads.parse_csv(body, predictor.column_names)
        predictions = predictor.predict(parsed)
        if output == payloads.CSV:
            return 200, payloads.CSV, payloads.csv_predictions(predictions)
        return 200, payloads.JSON, payloads.json_predictions(predictions)

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        limit = self.settings.max_payload_bytes
        stream = environ["wsgi.input"]
        raw_length = environ.get("CONTENT_LENGTH") or ""
        try:
            length = int(raw_length) if raw_length else None
        except ValueError:
            raise BadRequest(f"invalid Content-Length {raw_length!r}") from None
        too_large = PayloadTooLarge(
            f"the body is larger than SAGEMAKER_MAX_PAYLOAD_IN_MB={self.settings.max_payload_mb} "
            f"MB ({limit} bytes): split it into smaller requests"
        )
        if length is not None:
            if limit is not None and length > limit:
                raise too_large
            return stream.read(length) if length else b""
        # Chunked transfer: read at most one byte past the limit.
        body = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(body) > limit:
            raise too_large
        return body


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
