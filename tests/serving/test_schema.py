"""Checking tables against a signature's named columns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from mlflow.types import ColSpec, Schema, TensorSpec

from mlstack.serving.decoder import Table
from mlstack.serving.errors import BadRequest
from mlstack.serving.schema import ColumnSpec, TableSchema

SCHEMA = TableSchema(
    [
        ColumnSpec("x", "double"),
        ColumnSpec("n", "long"),
        ColumnSpec("flag", "boolean"),
        ColumnSpec("name", "string"),
        ColumnSpec("extra", "double", required=False),
    ]
)


def test_from_mlflow_schema() -> None:
    schema = TableSchema.from_mlflow(
        Schema([ColSpec("double", "x"), ColSpec("long", "n", required=False)])
    )
    assert schema is not None
    assert schema.columns == [ColumnSpec("x", "double"), ColumnSpec("n", "long", False)]
    assert schema.all_numeric and schema.has_int
    assert TableSchema.from_mlflow(Schema([TensorSpec(np.dtype("float64"), (-1, 2))])) is None
    assert TableSchema.from_mlflow(Schema([ColSpec("double")])) is None
    assert TableSchema.from_mlflow(None) is None


def test_positional_rows_take_the_signature_order() -> None:
    table = SCHEMA.align(Table(None, [[1.0, 2, True, "a", 0.5]]))
    assert table.columns == ["x", "n", "flag", "name", "extra"]


def test_positional_rows_of_the_wrong_width() -> None:
    with pytest.raises(BadRequest, match=r"rows have 2 values but the model expects 5 columns"):
        SCHEMA.align(Table(None, [[1.0, 2]]))


def test_missing_columns() -> None:
    with pytest.raises(
        BadRequest, match=r"missing columns: flag, name; the model expects: x \(double\)"
    ):
        SCHEMA.align(Table(["x", "n"], [[1.0, 2]]))


def test_optional_columns_may_be_left_out() -> None:
    table = Table(["name", "flag", "n", "x"], [["a", True, 2, 1.0]])
    assert SCHEMA.align(table) is table


def test_unknown_columns() -> None:
    with pytest.raises(BadRequest, match="unknown columns: bogus; the model expects"):
        SCHEMA.align(Table(["x", "n", "flag", "name", "bogus"], [[1.0, 2, True, "a", 3]]))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["1.0", 2, True, "a"], r"column 'x' expects double values; row 0 has string '1.0'"),
        ([True, 2, True, "a"], r"column 'x' expects double values; row 0 has boolean True"),
        ([1.0, 2.5, True, "a"], r"column 'n' expects long values; row 0 has number 2.5"),
        ([1.0, None, True, "a"], r"column 'n' expects long values; row 0 has null None"),
        ([1.0, 2, 1, "a"], r"column 'flag' expects boolean values; row 0 has integer 1"),
        ([1.0, 2, True, 5], r"column 'name' expects string values; row 0 has integer 5"),
        ([[1.0], 2, True, "a"], r"column 'x' expects double values; row 0 has array \[1.0\]"),
    ],
)
def test_wrong_types(row, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        SCHEMA.check_types(Table(["x", "n", "flag", "name"], [row]))


@pytest.mark.parametrize(
    ("column", "value", "refused_in"),
    [
        ("x", 1, "flag"),  # a JSON integer in a double column (59 for 59.0)
        ("x", None, "n"),  # a missing double: null
        ("n", -3, "flag"),
        ("flag", False, "x"),
        ("name", None, "n"),  # a missing string
        ("name", "b", "x"),
    ],
)
def test_good_types_and_nulls_where_allowed(column: str, value, refused_in: str) -> None:
    """Each value passes in its own column and is refused in another: the check tells them
    apart, and what passes reaches the model with the signature's types."""
    good = {"x": 1.5, "n": 2, "flag": True, "name": "a", column: value}
    table = Table(list(good), [list(good.values())])
    SCHEMA.check_types(table)
    frame = SCHEMA.dataframe(table)
    assert [str(t) for t in frame.dtypes[:3]] == ["float64", "int64", "bool"]
    passed = frame[column].iloc[0]
    assert pd.isna(passed) if value is None else passed == value
    moved = {**good, refused_in: value}
    with pytest.raises(BadRequest, match=f"column '{refused_in}' expects"):
        SCHEMA.check_types(Table(list(moved), [list(moved.values())]))


def test_int32_range() -> None:
    schema = TableSchema([ColumnSpec("i", "integer")])
    schema.check_types(Table(["i"], [[2**31 - 1]]))
    with pytest.raises(BadRequest, match="32-bit"):
        schema.check_types(Table(["i"], [[2**31]]))


def test_csv_text_conversion() -> None:
    table = SCHEMA.convert_text(
        Table(["x", "n", "flag", "name"], [["0.1", "7", "true", "a b"], ["", "-1", "0", ""]])
    )
    assert table.rows == [[0.1, 7, True, "a b"], [None, -1, False, ""]]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["abc", "1", "true", "a"], r"column 'x' expects double values; row 0 has 'abc'"),
        (["1", "1.5", "true", "a"], r"column 'n' expects long values; row 0 has '1.5'"),
        (["1", "1", "maybe", "a"], r"column 'flag' expects boolean values; row 0 has 'maybe'"),
    ],
)
def test_csv_wrong_types(row, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        SCHEMA.convert_text(Table(["x", "n", "flag", "name"], [row]))


def test_matrix_follows_the_requested_order() -> None:
    schema = TableSchema([ColumnSpec("a", "double"), ColumnSpec("b", "double")])
    matrix = schema.matrix(Table(["b", "a"], [[2.0, 1.0], [4.0, 3.0]]), ["a", "b"])
    assert matrix.dtype == np.float64
    assert matrix.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_dataframe_takes_the_signature_order() -> None:
    frame = SCHEMA.dataframe(Table(["name", "x", "flag", "n"], [["a", 1.0, True, 2]]))
    assert list(frame.columns) == ["x", "n", "flag", "name"]


@pytest.mark.parametrize(
    "types",
    [["double", "double"], ["double", "long"], ["float", "integer"]],
    ids=["doubles", "double-long", "float-integer"],
)
@pytest.mark.parametrize("rows", [[[1.5, 2]], [[1.5, 2], [-3.25, 2**30], [1e-30, 0]]])
def test_a_numeric_frame_is_the_frame_of_the_same_rows(types: list[str], rows) -> None:
    """The TABLE route builds its frame from the matrix; the model sees the same frame."""
    schema = TableSchema([ColumnSpec("a", types[0]), ColumnSpec("b", types[1])])
    whole = [value if index == 0 else int(value) for row in rows for index, value in enumerate(row)]
    typed = [whole[i : i + 2] for i in range(0, len(whole), 2)]
    expected = schema.dataframe(Table(["a", "b"], typed))
    actual = schema.numeric_frame(np.array(rows, dtype=np.float64))
    assert actual.equals(expected)
    assert list(actual.dtypes) == list(expected.dtypes)
    assert np.asarray(actual).flags["F_CONTIGUOUS"] == np.asarray(expected).flags["F_CONTIGUOUS"]


def test_decimals_in_float_columns_pass_the_quick_check() -> None:
    schema = TableSchema([ColumnSpec("a", "double"), ColumnSpec("b", "float")])
    schema.check_types(Table(["a", "b"], [[1.5, 2.5]]))
    with pytest.raises(BadRequest, match="row 0 has boolean True"):
        schema.check_types(Table(["a", "b"], [[1.5, True]]))
    with pytest.raises(BadRequest, match="which no double holds exactly"):
        schema.check_types(Table(["a", "b"], [[2**53 + 1, 2.5]]))


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        (" 2 ", 2.0),
        ("1_000", 1000.0),
        ("١٢", 12.0),
        ("-Infinity", -math.inf),
        ("", None),
        ("1e999", "'1e999'"),
        ("9" * 400, repr("9" * 40)),
        ("1.5\x00", repr("1.5\x00")),
        ("0x1p3", "'0x1p3'"),
    ],
)
def test_csv_numbers_deep_in_a_batch(cell: str, value: float | str | None) -> None:
    """All-number tables are converted at once; each cell still follows the one-cell rule
    and a bad one is named by its row and column."""
    schema = TableSchema([ColumnSpec("a", "double"), ColumnSpec("b", "float")])
    rows = [[repr(index / 7), repr(index * 1.1)] for index in range(1000)]
    rows[737][1] = cell
    table = Table(["a", "b"], rows)
    if isinstance(value, str):
        with pytest.raises(BadRequest) as refused:
            schema.convert_text(table)
        assert str(refused.value) == f"column 'b' expects float values; row 737 has {value}"
        return
    converted = schema.convert_text(table)
    assert converted.rows[737][1] == value
    assert converted.rows[999] == [999 / 7, 999 * 1.1]
    assert np.array_equal(schema.matrix(converted, ["b", "a"])[:, 1], [i / 7 for i in range(1000)])
