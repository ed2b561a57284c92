"""The ASGI app in-process: routes, status codes and messages, without a server."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass

import pandas as pd
import pytest

from mlstack.core.errors import StartupError
from mlstack.serving.app import InferenceApp
from mlstack.serving.config import MEBIBYTE, Settings
from mlstack.serving.lifecycle import Readiness, Watchdog
from support.waiting import HANG_S

from .models import Diabetes


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def call(
    app: InferenceApp,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str | None = "application/json",
    content_length: bool = True,
    chunk: int = 65536,
    **headers: str,
) -> Response:
    """One request through the ASGI app, its body in chunks as a server hands it over."""
    request = acall(app, method, path, body, content_type, content_length, chunk, **headers)
    return asyncio.run(request)


async def acall(
    app: InferenceApp,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str | None = "application/json",
    content_length: bool = True,
    chunk: int = 65536,
    **headers: str,
) -> Response:
    """call() on the running event loop, so that several can be in flight at once."""
    sent_headers = [(name.lower().replace("_", "-"), value) for name, value in headers.items()]
    if content_length:
        sent_headers.append(("content-length", str(len(body))))
    if content_type is not None:
        sent_headers.append(("content-type", content_type))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(n.encode(), v.encode()) for n, v in sent_headers],
    }
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": index < len(pieces) - 1}
        for index, piece in enumerate(pieces)
    ]
    captured: dict = {"body": b""}

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            captured["status"] = message["status"]
            captured["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        else:
            captured["body"] += message["body"]

    await app(scope, receive, send)
    return Response(captured["status"], captured["headers"], captured["body"])


@pytest.fixture(scope="module")
def app(forest_predictor) -> InferenceApp:
    served = InferenceApp(Settings(workers=2, max_payload_mb=1))
    served.set_predictor(forest_predictor)
    return served


def test_ping_before_and_after_loading(forest_predictor) -> None:
    loading = InferenceApp(Settings())
    release = threading.Event()

    def slow_loader(settings: Settings):
        release.wait(10)
        return forest_predictor

    thread = loading.start_loading(slow_loader, on_error=pytest.fail)
    response = call(loading, "GET", "/ping")
    assert response.status == 503
    assert response.json()["error_code"] == "MODEL_NOT_READY"
    assert call(loading, "POST", "/invocations", b"{}").status == 503
    release.set()
    thread.join(10)
    response = call(loading, "GET", "/ping")
    assert response.status == 200
    assert response.json()["status"] == "ready"
    assert response.json()["fast_path"].startswith("on (RandomForestRegressor")


def test_ping_waits_for_every_worker(forest_predictor) -> None:
    """Two workers sharing one counter: 200 from either only once both have loaded."""
    shared = Readiness(expected=2)
    first = InferenceApp(Settings(workers=2), Readiness(2, shared.counter))
    second = InferenceApp(Settings(workers=2), Readiness(2, shared.counter))
    first.set_predictor(forest_predictor)
    response = call(first, "GET", "/ping")
    assert response.status == 503
    assert response.json()["message"].endswith("1 of 2 workers have loaded the model")
    second.set_predictor(forest_predictor)
    assert call(first, "GET", "/ping").status == 200
    assert call(second, "GET", "/ping").status == 200


def test_a_worker_started_after_all_had_loaded_is_a_replacement() -> None:
    """Such a worker loads the model before it takes connections (worker.InferenceWorker)."""
    first = Readiness(expected=2)
    assert not first.was_ready
    first.mark_loaded()
    second = Readiness(2, first.counter)
    assert not second.was_ready
    second.mark_loaded()
    assert Readiness(2, first.counter).was_ready


def test_loading_failure_reports_one_line() -> None:
    errors: list[str] = []

    def broken(settings: Settings):
        raise StartupError("no MLflow model in /opt/ml/model")

    InferenceApp(Settings()).start_loading(broken, on_error=errors.append).join(10)
    assert errors == ["no MLflow model in /opt/ml/model"]


def test_invocations(app: InferenceApp, one_row: bytes, forest_model, diabetes_data) -> None:
    response = call(app, "POST", "/invocations", one_row)
    assert response.status == 200
    assert response.headers["content-type"] == "application/json"
    expected = forest_model.predict(pd.DataFrame(**json.loads(one_row)))
    assert response.json() == {"predictions": expected.tolist()}


def test_csv_in_and_out(app: InferenceApp, forest_model, diabetes_data) -> None:
    body = diabetes_data.test.iloc[:3].to_csv(index=False).encode()
    response = call(app, "POST", "/invocations", body, "text/csv", ACCEPT="text/csv")
    assert response.status == 200
    assert response.headers["content-type"] == "text/csv"
    values = [float(line) for line in response.body.decode().splitlines()]
    assert values == forest_model.predict(diabetes_data.test.iloc[:3]).tolist()


def test_csv_answers_json_unless_asked(app: InferenceApp, diabetes_data) -> None:
    body = diabetes_data.test.iloc[:2].to_csv(index=False, header=False).encode()
    response = call(app, "POST", "/invocations", body, "text/csv")
    assert response.status == 200
    assert len(response.json()["predictions"]) == 2


def test_batch_mode_answers_in_the_request_type(forest_predictor, diabetes_data) -> None:
    batch = InferenceApp(Settings(batch=True))
    batch.set_predictor(forest_predictor)
    body = diabetes_data.test.iloc[:2].to_csv(index=False, header=False).encode()
    response = call(batch, "POST", "/invocations", body, "text/csv", ACCEPT="*/*")
    assert response.headers["content-type"] == "text/csv"
    assert len(response.body.splitlines()) == 2


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"", "application/json", 400, "the request body is empty"),
        (b"  \n", "text/csv", 400, "the request body is empty"),
        (b'{"columns": ["age"], "data": [[', "application/json", 400, "malformed JSON"),
        (b'{"columns": ["age"], "data": [[0.1]]}', "application/json", 400, "missing columns: sex"),
        (b"1,2,3\n", "text/csv", 400, "rows have 3 values but the model expects 10 columns"),
        (b"<xml/>", "application/xml", 415, "unsupported Content-Type 'application/xml'"),
        (b"{}", None, 415, "no Content-Type"),
    ],
)
def test_bad_requests(app: InferenceApp, body, content_type, status, message) -> None:
    response = call(app, "POST", "/invocations", body, content_type)
    assert response.status == status
    assert message in response.json()["message"]


def test_unknown_and_wrongly_typed_columns(app: InferenceApp, diabetes_data) -> None:
    record = diabetes_data.test.iloc[0].to_dict()
    unknown = json.dumps({"dataframe_records": [{**record, "weight": 1.0}]}).encode()
    response = call(app, "POST", "/invocations", unknown)
    assert response.status == 400
    assert response.json()["message"].startswith("unknown columns: weight")
    wrong = json.dumps({"dataframe_records": [{**record, "bmi": "high"}]}).encode()
    response = call(app, "POST", "/invocations", wrong)
    assert response.status == 400
    assert response.json()["message"] == (
        "column 'bmi' expects double values; row 0 has string 'high'"
    )


def test_payload_limit(app: InferenceApp) -> None:
    response = call(app, "POST", "/invocations", b" " * (MEBIBYTE + 1))
    assert response.status == 413
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB=1" in response.json()["message"]
    chunked = call(app, "POST", "/invocations", b" " * (MEBIBYTE + 1), content_length=False)
    assert chunked.status == 413
    # At the limit the body is read, and here found empty.
    assert call(app, "POST", "/invocations", b" " * MEBIBYTE).status == 400


def test_not_acceptable(app: InferenceApp, one_row: bytes) -> None:
    response = call(app, "POST", "/invocations", one_row, ACCEPT="application/xml")
    assert response.status == 406


def test_custom_attributes_are_echoed(app: InferenceApp, one_row: bytes) -> None:
    response = call(
        app, "POST", "/invocations", one_row, X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES="trace=abc"
    )
    assert response.status == 200
    assert response.headers["x-amzn-sagemaker-custom-attributes"] == "trace=abc"


def test_execution_parameters(app: InferenceApp) -> None:
    response = call(app, "GET", "/execution-parameters")
    assert response.json() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 1,
    }


def test_routes_and_methods(app: InferenceApp) -> None:
    assert call(app, "GET", "/nowhere").status == 404
    response = call(app, "GET", "/invocations")
    assert response.status == 405
    assert response.headers["allow"] == "POST"
    head = call(app, "HEAD", "/ping")
    assert head.status == 200 and head.body == b""


def test_an_invocation_past_the_timeout_restarts_the_worker(forest_predictor, one_row) -> None:
    """SAGEMAKER_MODEL_SERVER_TIMEOUT bounds each invocation (gthread keeps the loop alive):
    the invocation below runs until the watchdog has ended it, however slow the machine."""
    expired: list[str] = []
    ended = threading.Event()

    def restart_worker(reason: str) -> None:
        expired.append(reason)
        ended.set()

    class Stuck:
        """The forest, stuck on the prediction thread (no fast path) until the watchdog acts."""

        fast = None
        column_names = forest_predictor.column_names
        table_schema = forest_predictor.table_schema

        def prepare(self, parsed):
            return forest_predictor.prepare(parsed)

        def run_many(self, works):
            assert ended.wait(HANG_S), "the watchdog never ended the invocation"
            return forest_predictor.run_many(works)

    watchdog = Watchdog(0.2, on_expired=restart_worker)
    slow = InferenceApp(Settings(timeout=1), watchdog=watchdog)
    slow.set_predictor(forest_predictor)
    slow.predictor = Stuck()
    checker = watchdog.start(interval=0.05)
    assert call(slow, "POST", "/invocations", one_row).status == 200
    checker.join(HANG_S)
    assert not checker.is_alive()  # it stops checking once it has ended one
    assert expired == ["an invocation ran longer than SAGEMAKER_MODEL_SERVER_TIMEOUT=0.2 s"]
    assert watchdog.running == {}


def test_quick_invocations_do_not_trip_the_watchdog(app: InferenceApp, one_row) -> None:
    for _ in range(3):
        call(app, "POST", "/invocations", one_row)
    assert app.watchdog.running == {}
    assert app.watchdog.check() is False


def concurrently(app: InferenceApp, bodies: list[bytes]) -> list[Response]:
    """The bodies POSTed at once, as connections of one worker send them."""

    async def main() -> list[Response]:
        return await asyncio.gather(*(acall(app, "POST", "/invocations", b) for b in bodies))

    return asyncio.run(main())


def test_requests_that_arrive_together_are_each_answered_as_alone(
    forest_model_dir, forest_model, diabetes_data: Diabetes
) -> None:
    """Fast-path requests batched on the event loop, generic ones on the prediction thread."""
    from mlstack.serving.predictor import load_predictor

    rows = diabetes_data.test.iloc[:10]
    bodies = [rows.iloc[[i]].to_json(orient="split").encode() for i in range(len(rows))]
    for fast_path in (True, False):
        served = InferenceApp(Settings(workers=1, batch_max_rows=4))
        served.set_predictor(load_predictor(forest_model_dir, fast_path, batch_max_rows=4))
        assert served.predictor is not None and served.predictor.proven
        responses = concurrently(served, bodies)
        assert [r.status for r in responses] == [200] * len(bodies)
        answers = [r.json()["predictions"][0] for r in responses]
        assert answers == forest_model.predict(rows).tolist()
        assert served.watchdog.running == {}


class RecordingCapture:
    """What the app hands data capture: offered answers, and whether it was closed."""

    def __init__(self) -> None:
        self.offered: list[int] = []
        self.closed = False

    def offer(self, headers, body, answer) -> None:
        self.offered.append(answer.status)

    def close(self) -> None:
        self.closed = True


def test_capture_is_offered_answers_and_closed_at_lifespan_shutdown(
    forest_predictor, one_row
) -> None:
    served = InferenceApp(Settings(workers=1))
    served.set_predictor(forest_predictor)
    served.capture = recording = RecordingCapture()
    call(served, "POST", "/invocations", one_row)
    call(served, "POST", "/invocations", b"[", content_type="text/csv")
    assert recording.offered == [200, 400]  # Capture.offer keeps only the 200
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict:
        return messages.pop(0)

    async def send(message: dict) -> None:
        sent.append(message["type"])
        if message["type"] == "lifespan.startup.complete":
            assert not recording.closed

    asyncio.run(served({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert recording.closed
