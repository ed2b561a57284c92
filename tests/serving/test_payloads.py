"""Request parsing and response formatting, without a model or a server."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlstack.serving import payloads
from mlstack.serving.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from mlstack.serving.payloads import Table

FRAME = pd.DataFrame({"a": [1.5, 2.5], "b": [3.0, -4.25]})
ROWS = [[1.5, 3.0], [2.5, -4.25]]


def parse(document, legacy_format=None):
    return payloads.parse_json(json.dumps(document).encode(), legacy_format)


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": json.loads(FRAME.to_json(orient="split"))},
        {"dataframe_split": {"columns": ["a", "b"], "data": ROWS}},
        {"dataframe_records": json.loads(FRAME.to_json(orient="records"))},
        {"instances": json.loads(FRAME.to_json(orient="records"))},
        {"inputs": {"a": [1.5, 2.5], "b": [3.0, -4.25]}},
        # The reference's payload: df.iloc[[0]].to_json(orient="split"), here two rows.
        json.loads(FRAME.to_json(orient="split")),
        json.loads(FRAME.to_json(orient="records")),
    ],
    ids=[
        "split",
        "split-no-index",
        "records",
        "instances",
        "inputs-columns",
        "bare-split",
        "bare-records",
    ],
)
def test_named_json_forms_give_the_same_table(document) -> None:
    parsed = parse(document)
    assert parsed.table == Table(["a", "b"], ROWS)
    assert parsed.params is None


@pytest.mark.parametrize(
    "document",
    [{"instances": ROWS}, {"inputs": ROWS}, {"dataframe_split": {"data": ROWS}}, ROWS],
    ids=["instances-rows", "inputs-rows", "split-without-columns", "bare-rows"],
)
def test_positional_rows(document) -> None:
    assert parse(document).table == Table(None, ROWS)


def test_reference_payload_exactly_as_sent() -> None:
    body = FRAME.iloc[[0]].to_json(orient="split").encode()
    parsed = payloads.parse_json(body)
    assert parsed.table == Table(["a", "b"], [[1.5, 3.0]])
    assert parsed.raw == {"dataframe_split": json.loads(body)}


def test_legacy_content_type_formats() -> None:
    split = json.loads(FRAME.to_json(orient="split"))
    records = json.loads(FRAME.to_json(orient="records"))
    assert parse(split, "pandas-split").table == Table(["a", "b"], ROWS)
    assert parse(records, "pandas-records").table == Table(["a", "b"], ROWS)


def test_params_are_kept() -> None:
    parsed = parse({"inputs": {"a": [1.0]}, "params": {"k": 3}})
    assert parsed.params == {"k": 3}
    assert parsed.table == Table(["a"], [[1.0]])


def test_records_with_missing_keys_get_nulls() -> None:
    table = parse({"dataframe_records": [{"a": 1.0}, {"b": 2.0}]}).table
    assert table == Table(["a", "b"], [[1.0, None], [None, 2.0]])


def test_single_instance_object_is_one_row() -> None:
    assert parse({"inputs": {"a": 1.0, "b": 2.0}}).table == Table(["a", "b"], [[1.0, 2.0]])


def test_tensors_are_left_to_mlflow() -> None:
    parsed = parse({"inputs": [[[1.0, 2.0]], [[3.0, 4.0]]]})
    assert parsed.table is None
    assert parsed.raw == {"inputs": [[[1.0, 2.0]], [[3.0, 4.0]]]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe\x00garbage", "malformed JSON"),
        (b'"text"', "the JSON body is a str"),
        (b'{"rows": []}', "the JSON object has 'rows'"),
        (b'{"instances": [], "inputs": []}', "send exactly one of them"),
        (b'{"instances": [[1]], "extra": 1}', "unexpected fields next to 'instances'"),
        (b'{"instances": [[1]], "params": [1]}', '"params" must be a JSON object'),
        (b'{"dataframe_split": {"columns": ["a"], "data": []}}', "has no rows"),
        (
            b'{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}',
            "has 1 values, expected 2",
        ),
        (b'{"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}', "names a column twice"),
        (b'{"dataframe_split": [[1, 2]]}', 'must be an object with "data"'),
        (b'{"dataframe_records": [[1, 2]]}', "must be a list of objects"),
        (b'{"instances": []}', "has no rows"),
        (b'{"instances": [[1, 2], [3]]}', "row 1 of instances has 1 values, expected 2"),
        (b'{"inputs": {"a": [1, 2], "b": [3]}}', "different lengths"),
        (b'{"columns": ["a"], "data": [[1]], "dtypes": {}}', "the JSON object has"),
    ],
)
def test_malformed_json_is_a_bad_request(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace("[", r"\[")):
        payloads.parse_json(body)


def test_csv_with_header() -> None:
    body = FRAME.to_csv(index=False).encode()
    parsed = payloads.parse_csv(body, ["a", "b"])
    assert parsed.table == Table(["a", "b"], [["1.5", "3.0"], ["2.5", "-4.25"]])
    assert parsed.media_type == payloads.CSV


def test_csv_header_in_another_order() -> None:
    parsed = payloads.parse_csv(b"b,a\n3.0,1.5\n", ["a", "b"])
    assert parsed.table == Table(["b", "a"], [["3.0", "1.5"]])


def test_csv_without_header_is_positional() -> None:
    parsed = payloads.parse_csv(b"1.5,3.0\r\n2.5,-4.25\r\n\r\n", ["a", "b"])
    assert parsed.table == Table(None, [["1.5", "3.0"], ["2.5", "-4.25"]])


def test_csv_header_guessed_without_signature() -> None:
    assert payloads.parse_csv(b"x,y\n1,2\n", None).table.columns == ["x", "y"]
    assert payloads.parse_csv(b"1,2\n", None).table.columns is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\n\n", "no rows"),
        (b"a,b\n", "a header but no rows"),
        (b"1,2\n3\n", "CSV row 1 has 1 values, expected 2"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_csv(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        payloads.parse_csv(body, ["a", "b"])


@pytest.mark.parametrize(
    ("header", "media"),
    [
        ("application/json", payloads.JSON),
        ("Application/JSON; charset=UTF-8", payloads.JSON),
        ("application/json; format=pandas-split", payloads.JSON),
        ("text/csv", payloads.CSV),
        ("text/csv; charset=utf-8", payloads.CSV),
    ],
)
def test_supported_content_types(header: str, media: str) -> None:
    assert payloads.parse_content_type(header)[0] == media


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "text/plain",
        "application/x-npy",
        "text/csv; charset=latin-1",
        "application/json; format=tf",
    ],
)
def test_unsupported_content_types(header) -> None:
    with pytest.raises(UnsupportedMediaType):
        payloads.parse_content_type(header)


@pytest.mark.parametrize(
    ("accept", "default", "chosen"),
    [
        (None, payloads.JSON, payloads.JSON),
        ("*/*", payloads.CSV, payloads.CSV),
        ("text/csv", payloads.JSON, payloads.CSV),
        ("text/csv;q=0.9, application/json", payloads.JSON, payloads.CSV),
        ("application/json, text/csv", payloads.CSV, payloads.JSON),
        ("image/png, text/*", payloads.JSON, payloads.CSV),
    ],
)
def test_accept(accept, default, chosen) -> None:
    assert payloads.choose_output(accept, default) == chosen


def test_unacceptable_accept() -> None:
    with pytest.raises(NotAcceptable):
        payloads.choose_output("application/xml", payloads.JSON)


def test_json_predictions_round_trip_floats_exactly() -> None:
    values = np.array([0.1, 1 / 3, 137.85000000000002, -2.5e-310])
    decoded = json.loads(payloads.json_predictions(values))
    assert decoded == {"predictions": values.tolist()}
    assert np.array_equal(np.array(decoded["predictions"]), values)


def test_json_predictions_of_frames_are_records() -> None:
    frame = pd.DataFrame({"y": np.array([1, 2], dtype=np.int64), "label": ["a", "b"]})
    assert json.loads(payloads.json_predictions(frame)) == {
        "predictions": [{"y": 1, "label": "a"}, {"y": 2, "label": "b"}]
    }


def test_csv_predictions() -> None:
    assert payloads.csv_predictions(np.array([1.5, 1 / 3])) == b"1.5\n0.3333333333333333\n"
    assert payloads.csv_predictions(np.array([[1, 2], [3, 4]])) == b"1,2\n3,4\n"
    assert payloads.csv_predictions(pd.Series([1.0])) == b"1.0\n"
    assert payloads.csv_predictions(pd.DataFrame({"y": [1.0]})) == b"y\n1.0\n"
    with pytest.raises(NotAcceptable):
        payloads.csv_predictions([{"a": 1}])
