"""Hostile input, in-process: bounded parsing, no 5xx for client input, one answer per input.

Each case is an input that costs an unguarded server dearly or splits the two paths:
records with distinct keys (memory), deep nesting and long integers (500s), and the fast
and generic paths disagreeing on 1e39 and on JSON integers in double columns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mlstack.serving import decoder
from mlstack.serving.app import InferenceApp
from mlstack.serving.config import Limits, Settings
from mlstack.serving.errors import BadRequest
from mlstack.serving.predictor import Predictor, load_predictor

from .models import Diabetes, tiled_rows
from .test_app import call

MEBIBYTE = 1024 * 1024


def distinct_key_records(count: int) -> bytes:
    """The issue's payload: `count` one-key records, each key different (169 KB at 12,000)."""
    return json.dumps({"dataframe_records": [{f"k{i}": 1} for i in range(count)]}).encode()


@pytest.fixture(scope="module")
def generic_predictor(forest_model_dir: Path) -> Predictor:
    return load_predictor(forest_model_dir, fast_path=False)


@pytest.fixture(scope="module")
def apps(forest_predictor: Predictor, generic_predictor: Predictor) -> dict[str, InferenceApp]:
    """The same model served with the fast path and without it."""
    served = {}
    for name, predictor in (("fast", forest_predictor), ("generic", generic_predictor)):
        app = InferenceApp(Settings(workers=1))
        app.set_predictor(predictor)
        served[name] = app
    return served


def post(app: InferenceApp, body: bytes | str, content_type: str = "application/json"):
    data = body.encode() if isinstance(body, str) else body
    return call(app, "POST", "/invocations", data, content_type)


# --- 1. memory blow-up from a small body --------------------------------------------------------


@pytest.mark.parametrize("count", [12_000, 30_000])
def test_distinct_key_records_are_refused_before_rows_are_built(apps, count: int) -> None:
    """Building rows from these would take ~1.1 GiB at 12,000 records, ~7 GiB at 30,000: the
    first record with a key the signature does not name is refused instead."""
    body = distinct_key_records(count)
    tracemalloc.start()
    try:
        response = post(apps["fast"], body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status == 400
    assert response.json()["message"].startswith("unknown columns: k0; the model expects: age")
    # The parsed JSON itself (the body is 169 KB / 430 KB), nothing of records x keys.
    assert peak < 40 * MEBIBYTE, peak


def test_records_without_a_signature_stop_at_the_columns_limit() -> None:
    limits = Limits(max_columns=100)
    with pytest.raises(BadRequest, match=r"more than INFERENCE_MAX_COLUMNS=100"):
        decoder.parse_json(distinct_key_records(12_000), limits=limits)


def test_records_without_a_signature_stop_at_the_values_limit() -> None:
    limits = Limits(max_values=1_000_000)
    with pytest.raises(BadRequest, match=r"3000 rows of 3000 columns, more than INFERENCE_MAX_V"):
        decoder.parse_json(distinct_key_records(3_000), limits=limits)


def test_same_keys_in_every_record_are_read_once() -> None:
    body = json.dumps({"dataframe_records": [{"a": i, "b": -i} for i in range(5)]}).encode()
    assert decoder.parse_json(body).table.columns == ["a", "b"]


# --- 2. parser failures answered 500 ------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "the JSON nests deeper than INFERENCE_MAX_DEPTH=32"),
        (b"[" * 100_000, "the JSON nests deeper than INFERENCE_MAX_DEPTH=32"),
        (
            b'{"instances": [[' + b"1" * 5_000 + b"]]}",
            "the JSON has an integer of more than 4300 digits",
        ),
        (b'{"inputs": ' + b"[" * 40 + b"1" + b"]" * 40 + b"}", "the JSON nests deeper"),
    ],
    ids=["100k-nested-brackets", "100k-open-brackets", "5000-digit-integer", "depth-41"],
)
def test_parser_failures_are_400s_naming_the_problem(apps, body: bytes, message: str) -> None:
    for app in apps.values():
        response = post(app, body)
        assert response.status == 400, response.body[:300]
        assert response.json()["error_code"] == "BAD_REQUEST"
        assert response.json()["message"].startswith(message)
        assert "Traceback" not in response.json()["message"]


def test_huge_integers_in_csv_are_400s(apps) -> None:
    row = ",".join(["1" * 5_000] + ["0.1"] * 9)
    for app in apps.values():
        response = post(app, row, "text/csv")
        assert response.status == 400
        assert response.json()["message"].startswith("column 'age' expects double values")


@pytest.mark.parametrize(
    ("limits", "body", "variable"),
    [
        (Limits(max_rows=2), {"instances": [[0.0] * 10] * 3}, "INFERENCE_MAX_ROWS=2"),
        (Limits(max_columns=5), {"inputs": {f"c{i}": [1.0] for i in range(6)}}, "COLUMNS=5"),
        (Limits(max_values=29), {"instances": [[0.0] * 10] * 3}, "INFERENCE_MAX_VALUES=29"),
        (Limits(max_depth=4), {"inputs": [[[[1.0]]]]}, "INFERENCE_MAX_DEPTH=4"),
    ],
    ids=["rows", "columns", "values", "depth"],
)
def test_each_limit_is_a_400_naming_it(forest_predictor, limits, body, variable) -> None:
    app = InferenceApp(Settings(workers=1, **dataclasses.asdict(limits)))
    app.set_predictor(forest_predictor)
    response = post(app, json.dumps(body))
    assert response.status == 400
    assert variable in response.json()["message"]


def test_csv_limits(forest_predictor, diabetes_data: Diabetes) -> None:
    app = InferenceApp(Settings(workers=1, max_rows=3))
    app.set_predictor(forest_predictor)
    body = diabetes_data.test.iloc[:4].to_csv(index=False, header=False)
    response = post(app, body, "text/csv")
    assert response.status == 400
    assert "INFERENCE_MAX_ROWS=3" in response.json()["message"]
    assert post(app, diabetes_data.test.iloc[:3].to_csv(index=False), "text/csv").status == 200


def test_the_default_limits_take_a_full_dense_body(forest_predictor, diabetes_data) -> None:
    """6 MB of the test set's rows, split format: well within every default limit."""
    rows = tiled_rows(diabetes_data.test, 5.5)
    body = json.dumps({"columns": list(diabetes_data.test.columns), "data": rows.tolist()})
    assert 5 * MEBIBYTE < len(body) < 6 * MEBIBYTE
    parsed = decoder.parse_json(body.encode(), limits=Limits())
    assert len(parsed.table.rows) == len(rows)


# --- no 5xx for the client's input; a 500 is our bug, logged, and the worker goes on -------------


def test_a_bug_is_a_500_without_internals_and_logged(forest_predictor, one_row, caplog) -> None:
    class Broken:
        fast = None
        column_names = forest_predictor.column_names
        table_schema = forest_predictor.table_schema

        def prepare(self, parsed):
            return forest_predictor.prepare(parsed)

        def run_many(self, works):
            raise ZeroDivisionError("secret internals /opt/venv/lib/...")

    app = InferenceApp(Settings(workers=1))
    app.set_predictor(forest_predictor)
    app.predictor = Broken()
    with caplog.at_level(logging.ERROR, logger="mlstack.serving"):
        response = post(app, one_row)
    assert response.status == 500
    message = response.json()["message"]
    assert "secret" not in message and "ZeroDivisionError" not in message
    error_id = message.split("error id ")[1].split(")")[0]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log
    app.predictor = forest_predictor
    assert post(app, one_row).status == 200


# --- the body arrives in time, or the request ends -------------------------------------------


def test_a_slow_body_times_out_with_408(forest_predictor) -> None:
    app = InferenceApp(Settings(workers=1, body_timeout=1))
    app.set_predictor(forest_predictor)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100")],
    }
    sent: list[dict] = []

    async def receive() -> dict:
        await asyncio.sleep(0.4)
        return {"type": "http.request", "body": b" ", "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    message = json.loads(sent[1]["body"])["message"]
    assert message.startswith("the body did not arrive within INFERENCE_BODY_TIMEOUT=1 s")


def test_a_client_that_leaves_gets_no_prediction(forest_predictor) -> None:
    app = InferenceApp(Settings(workers=1))
    app.set_predictor(forest_predictor)
    response = call(app, "POST", "/invocations", b"", content_length=False)
    assert response.status == 400


# --- 4. one answer per input, whichever path serves it ---------------------------------------


def both(apps, body: bytes | str, content_type: str = "application/json"):
    """The fast and the generic path's answers: (status, JSON) each."""
    answers = [post(app, body, content_type) for app in (apps["fast"], apps["generic"])]
    return [(answer.status, answer.json()) for answer in answers]


def records(rows) -> str:
    return json.dumps({"dataframe_records": rows})


def test_a_float32_overflow_is_refused_alike_by_both_paths(apps, diabetes_data) -> None:
    """1e39 is finite in float64 and infinite in float32: before, the fast path said 200."""
    row = {**diabetes_data.test.iloc[0].to_dict(), "bmi": 1e39}
    fast, generic = both(apps, records([row]))
    assert fast == generic
    assert fast[0] == 400
    assert fast[1]["message"] == (
        "column 'bmi' row 0 has 1e+39, beyond the float32 range the model computes in "
        "(+-3.4028235e+38)"
    )
    csv_row = ",".join(str(row[name]) for name in diabetes_data.test.columns)
    assert both(apps, csv_row, "text/csv") == [fast, fast]
    # The largest float32 and an integer beyond it.
    at_edge = {**row, "bmi": float(np.finfo(np.float32).max)}
    assert [status for status, _ in both(apps, records([at_edge]))] == [200, 200]
    huge_integer = {**row, "bmi": 10**39}
    assert both(apps, records([huge_integer]))[0][0] == 400


def test_json_integers_in_double_columns_are_doubles_in_both_paths(
    apps, forest_model, diabetes_data
) -> None:
    """59 is what a JavaScript client sends for 59.0: before, the generic path said 400."""
    frame = diabetes_data.test.iloc[:3].round(0)  # whole numbers: -0.0, 0.0 ...
    frame.iloc[:, 0] = [59.0, -3.0, 0.0]
    rows = [{k: int(v) for k, v in r.items()} for r in frame.to_dict("records")]
    expected = forest_model.predict(frame).tolist()
    assert both(apps, records(rows)) == [(200, {"predictions": expected})] * 2
    # A null elsewhere sends the request down the generic path: same answer for the rest.
    with_null = [*rows, {**rows[0], "bmi": None}]
    fast, generic = both(apps, records(with_null))
    assert fast == generic
    assert fast[0] == 200 and fast[1]["predictions"][:3] == expected


def test_integers_no_double_holds_are_refused_alike(apps, diabetes_data) -> None:
    row = {**diabetes_data.test.iloc[0].to_dict(), "age": 2**53 + 1}
    fast, generic = both(apps, records([row]))
    assert fast == generic
    assert fast[0] == 400
    assert fast[1]["message"] == (
        "column 'age' expects double values; row 0 has integer 9007199254740993, which no "
        "double holds exactly: send it as a decimal number (e.g. 1.5e30)"
    )
    exact = {**row, "age": 2**60}  # a power of two: exact
    assert [status for status, _ in both(apps, records([exact]))] == [200, 200]
