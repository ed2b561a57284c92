"""Request decoding (JSON and CSV into tables), without a model or a server."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mlstack.serving import content_types, decoder
from mlstack.serving.decoder import Table
from mlstack.serving.errors import BadRequest

FRAME = pd.DataFrame({"a": [1.5, 2.5], "b": [3.0, -4.25]})
ROWS = [[1.5, 3.0], [2.5, -4.25]]


def parse(document, legacy_format=None):
    return decoder.parse_json(json.dumps(document).encode(), legacy_format)


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
    parsed = decoder.parse_json(body)
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
        decoder.parse_json(body)


def test_csv_with_header() -> None:
    body = FRAME.to_csv(index=False).encode()
    parsed = decoder.parse_csv(body, ["a", "b"])
    assert parsed.table == Table(["a", "b"], [["1.5", "3.0"], ["2.5", "-4.25"]])
    assert parsed.media_type == content_types.CSV


def test_csv_header_in_another_order() -> None:
    parsed = decoder.parse_csv(b"b,a\n3.0,1.5\n", ["a", "b"])
    assert parsed.table == Table(["b", "a"], [["3.0", "1.5"]])


def test_csv_without_header_is_positional() -> None:
    parsed = decoder.parse_csv(b"1.5,3.0\r\n2.5,-4.25\r\n\r\n", ["a", "b"])
    assert parsed.table == Table(None, [["1.5", "3.0"], ["2.5", "-4.25"]])


def test_csv_header_guessed_without_signature() -> None:
    assert decoder.parse_csv(b"x,y\n1,2\n", None).table.columns == ["x", "y"]
    assert decoder.parse_csv(b"1,2\n", None).table.columns is None


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
        decoder.parse_csv(body, ["a", "b"])
