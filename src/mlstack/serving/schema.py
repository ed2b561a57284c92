"""Checking a request's table against the model signature's named columns.

MLflow's own enforcement drops unknown columns and reports type errors deep in
a stack trace; here every problem becomes one 400 message naming the column,
the row and what was expected.

One answer per input, whichever path serves it: the checks here run before the
fast path and the generic path alike, and the DataFrame for the generic path
carries each column in its signature's type, so that MLflow accepts what the
fast path accepts. The rules: a JSON integer is a valid double when a double
holds it exactly (59 for 59.0, as JavaScript clients send it); a finite value
that would overflow float32, the type 'float' columns and scikit-learn's trees
compute in, is refused with one message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from mlstack.serving.decoder import Table, unknown_columns
from mlstack.serving.errors import BadRequest

FLOAT_TYPES = {"double", "float"}
INT_TYPES = {"long", "integer"}
NUMERIC_TYPES = FLOAT_TYPES | INT_TYPES
# JSON types each signature type accepts (bool is not an int here, as in MLflow).
ACCEPTED = {
    "double": (float, int),
    "float": (float, int),
    "long": (int,),
    "integer": (int,),
    "boolean": (bool,),
    "string": (str,),
    "binary": (str, bytes),
    "datetime": (str,),
}
NULLABLE = FLOAT_TYPES | {"string", "binary", "datetime"}
JSON_TYPE_NAMES = {
    float: "number",
    int: "integer",
    bool: "boolean",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}
TRUE_TEXT = {"true", "1", "t", "yes"}
FALSE_TEXT = {"false", "0", "f", "no"}
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT32_MAX = float(np.finfo(np.float32).max)
# The numpy type each signature type reaches the pyfunc model in (MLflow's own mapping).
NUMPY_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}


@dataclass(frozen=True)
class ColumnSpec:
    """One named input column: its MLflow type name ('double', ...) and whether required."""

    name: str
    type: str
    required: bool = True


def exact_double(value: int) -> bool:
    """Whether a double holds this integer exactly (59: yes; 2**53 + 1: no)."""
    try:
        return float(value) == value
    except OverflowError:
        return False


def _overflow_error(name: str, row_index: int, value: float) -> BadRequest:
    return BadRequest(
        f"column {name!r} row {row_index} has {value!r}, beyond the float32 range the "
        f"model computes in (+-{FLOAT32_MAX:.8g})"
    )


def check_float32_matrix(
    matrix: np.ndarray, order: Sequence[str], names: Sequence[str], table_order: Sequence[str]
) -> None:
    """check_float32 for a float64 matrix whose columns follow `order`.

    The value named is the first in the request (by row, then in the request's column
    order), whatever order the matrix has: each path names the same one.
    """
    if not names:
        return
    with np.errstate(over="ignore"):
        overflows = np.isinf(matrix.astype(np.float32)) & np.isfinite(matrix)
    if not overflows.any():
        return
    wanted = set(names)
    rank = {name: index for index, name in enumerate(table_order)}
    found = [
        (int(row), rank[order[column]], order[column], float(matrix[row, column]))
        for row, column in zip(*np.nonzero(overflows), strict=True)
        if order[column] in wanted
    ]
    if found:
        row, _, name, value = min(found)
        raise _overflow_error(name, row, value)


def _describe(value: Any) -> str:
    kind = JSON_TYPE_NAMES.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text[:40]}{'...' if len(text) > 40 else ''}"


class TableSchema:
    """The named columns of a column-based MLflow signature."""

    def __init__(self, columns: Sequence[ColumnSpec]) -> None:
        self.columns = list(columns)
        self.names = [column.name for column in self.columns]
        self.by_name = {column.name: column for column in self.columns}
        self.required = [column.name for column in self.columns if column.required]
        self.all_numeric = all(column.type in NUMERIC_TYPES for column in self.columns)
        self.has_int = any(column.type in INT_TYPES for column in self.columns)
        self.all_float = all(column.type in FLOAT_TYPES for column in self.columns)

    @classmethod
    def from_mlflow(cls, schema: Any) -> TableSchema | None:
        """A TableSchema from an MLflow input Schema; None for tensor or unnamed schemas."""
        if schema is None or schema.is_tensor_spec() or not schema.has_input_names():
            return None
        columns = []
        for spec in schema.inputs:
            type_name = getattr(spec.type, "name", None)
            type_name = type_name if type_name in ACCEPTED else "other"
            columns.append(ColumnSpec(str(spec.name), type_name, bool(spec.required)))
        return cls(columns)

    def expected(self) -> str:
        """The expected columns, for messages."""
        return ", ".join(f"{c.name} ({c.type})" for c in self.columns)

    def align(self, table: Table) -> Table:
        """Name positional columns, then refuse missing or unknown ones."""
        if table.columns is None:
            width = len(table.rows[0]) if table.rows else 0
            if width != len(self.names):
                raise BadRequest(
                    f"rows have {width} values but the model expects {len(self.names)} "
                    f"columns in this order: {self.expected()}"
                )
            return Table(list(self.names), table.rows)
        known = self.by_name
        unknown = [name for name in table.columns if name not in known]
        if unknown:
            raise unknown_columns(unknown, self)
        present = set(table.columns)
        missing = [name for name in self.required if name not in present]
        if missing:
            raise BadRequest(
                f"missing columns: {', '.join(missing)}; the model expects: {self.expected()}"
            )
        return table

    def check_types(self, table: Table) -> None:
        """Refuse values whose JSON type the column's signature type does not accept."""
        if self.all_float and set(map(type, chain.from_iterable(table.rows))) <= {float}:
            return  # decimals in float columns: nothing to refuse (the common request)
        specs = [self.by_name[name] for name in table.columns]
        for column_index, spec in enumerate(specs):
            accepted = ACCEPTED.get(spec.type)
            if accepted is None:
                continue
            nullable = spec.type in NULLABLE
            integers = False
            for row_index, row in enumerate(table.rows):
                value = row[column_index]
                kind = type(value)
                if kind in accepted or (value is None and nullable):
                    integers = integers or kind is int
                    continue
                raise BadRequest(
                    f"column {spec.name!r} expects {spec.type} values; row {row_index} has "
                    f"{_describe(value)}"
                )
            if spec.type in INT_TYPES:
                self._check_range(spec, table, column_index)
            elif integers:
                self._check_exact_doubles(spec, table, column_index)

    @staticmethod
    def _check_range(spec: ColumnSpec, table: Table, column_index: int) -> None:
        low, high, bits = (
            (INT32_MIN, INT32_MAX, 32) if spec.type == "integer" else (INT64_MIN, INT64_MAX, 64)
        )
        for row_index, row in enumerate(table.rows):
            if not low <= row[column_index] <= high:
                raise BadRequest(
                    f"column {spec.name!r} expects {bits}-bit integers; row {row_index} has "
                    f"{_describe(row[column_index])}"
                )

    @staticmethod
    def _check_exact_doubles(spec: ColumnSpec, table: Table, column_index: int) -> None:
        for row_index, row in enumerate(table.rows):
            value = row[column_index]
            if type(value) is int and not exact_double(value):
                raise BadRequest(
                    f"column {spec.name!r} expects {spec.type} values; row {row_index} has "
                    f"{_describe(value)}, which no double holds exactly: send it as a "
                    "decimal number (e.g. 1.5e30)"
                )

    def float32_columns(self, model_computes_in_float32: bool) -> list[str]:
        """The columns whose values reach the model as float32."""
        if model_computes_in_float32:
            return [c.name for c in self.columns if c.type in NUMERIC_TYPES]
        return [c.name for c in self.columns if c.type == "float"]

    @staticmethod
    def check_float32(table: Table, names: Sequence[str]) -> None:
        """Refuse finite values that float32 cannot hold (they would become infinite)."""
        wanted = set(names)
        columns = [name for name in table.columns if name in wanted]
        if not columns:
            return
        positions = {name: index for index, name in enumerate(table.columns)}
        # One matrix of the float32 columns, in the request's order; other values are NaN.
        matrix = np.array(
            [
                [
                    value if type(value) is float or type(value) is int else np.nan
                    for value in (row[positions[name]] for name in columns)
                ]
                for row in table.rows
            ],
            dtype=np.float64,
        ).reshape(len(table.rows), len(columns))
        check_float32_matrix(matrix, columns, columns, columns)

    def convert_text(self, table: Table) -> Table:
        """Turn CSV cells (strings) into the Python values the column types call for."""
        if all(self.by_name[name].type in FLOAT_TYPES for name in table.columns):
            matrix = _text_to_float_matrix(table.rows)
            if matrix is not None:
                return Table(table.columns, matrix.tolist(), matrix)
        return self._convert_cells(table)

    def _convert_cells(self, table: Table) -> Table:
        """convert_text cell by cell: any column types, and the message naming a bad cell."""
        converters = [self._text_converter(self.by_name[name]) for name in table.columns]
        rows = []
        for row_index, row in enumerate(table.rows):
            converted = []
            for column_index, cell in enumerate(row):
                try:
                    converted.append(converters[column_index](cell))
                except ValueError:
                    spec = self.by_name[table.columns[column_index]]
                    raise BadRequest(
                        f"column {spec.name!r} expects {spec.type} values; row {row_index} "
                        f"has {cell[:40]!r}"
                    ) from None
            rows.append(converted)
        return Table(table.columns, rows)

    @staticmethod
    def _text_converter(spec: ColumnSpec):
        if spec.type in FLOAT_TYPES:
            return _text_to_float
        if spec.type in INT_TYPES:
            return lambda cell: int(cell)
        if spec.type == "boolean":
            return _text_to_bool
        return lambda cell: cell

    def matrix(self, table: Table, order: Sequence[str]) -> np.ndarray:
        """A float64 matrix of an all-numeric table, its columns in the given order."""
        if table.matrix is not None:
            matrix = table.matrix
        else:
            matrix = np.array(table.rows, dtype=np.float64).reshape(len(table.rows), -1)
        if list(table.columns) != list(order):
            positions = {name: index for index, name in enumerate(table.columns)}
            matrix = matrix[:, [positions[name] for name in order]]
        return matrix

    def numeric_frame(self, matrix: np.ndarray):
        """A pandas DataFrame of a finite float64 matrix in the signature's column order,
        each column in its signature's type, as dataframe() types the same rows.

        Exact for the rows it is given (the TABLE route): integers below 2**53, which float64
        holds exactly, and float32 columns rounded from float64, as astype rounds them.
        """
        import pandas as pd

        dtypes = [NUMPY_TYPES[column.type] for column in self.columns]
        if all(dtype == "float64" for dtype in dtypes):
            # Column-major, as pandas lays out a frame built from rows: the model then sees
            # the same array (np.asarray(frame)) either way.
            return pd.DataFrame(np.asfortranarray(matrix), columns=self.names, copy=False)
        return pd.DataFrame(
            {
                name: matrix[:, index].astype(dtype)
                for index, (name, dtype) in enumerate(zip(self.names, dtypes, strict=True))
            }
        )

    def dataframe(self, table: Table):
        """A pandas DataFrame in the signature's column order and numeric types.

        The types are set here, as the fast path sees them: MLflow refuses int64
        for a double column (59 for 59.0) and float64 for a float one.
        """
        import pandas as pd

        frame = pd.DataFrame(table.rows, columns=table.columns)
        ordered = [name for name in self.names if name in frame.columns]
        frame = frame[ordered]
        for name in ordered:
            dtype = NUMPY_TYPES.get(self.by_name[name].type)
            if dtype is not None and frame[name].dtype != dtype:
                frame[name] = frame[name].astype(dtype)
        return frame


def _text_to_float_matrix(rows: list[list[str]]) -> np.ndarray | None:
    """CSV cells as a float64 matrix in one C loop, each cell exactly as _text_to_float turns
    it (numpy calls Python's float on each str); None when a cell needs _text_to_float's own
    judgement: an empty or unreadable cell, or an infinite value."""
    try:
        matrix = np.array(rows, dtype=np.float64)
    except ValueError:
        return None
    if matrix.ndim != 2 or np.isinf(matrix).any():
        return None
    return matrix


def _text_to_float(cell: str) -> float | None:
    """A CSV cell as a double: empty is missing; digits beyond a double's range are refused."""
    if not cell.strip():
        return None
    value = float(cell)
    if math.isinf(value) and "inf" not in cell.lower():
        raise ValueError(cell)  # e.g. 5,000 digits: float() says inf, the client did not
    return value


def _text_to_bool(cell: str) -> bool:
    word = cell.strip().lower()
    if word in TRUE_TEXT:
        return True
    if word in FALSE_TEXT:
        return False
    raise ValueError(cell)
