"""Request bodies in: JSON and CSV decoded into a table of rows, within the limits.

JSON inputs follow MLflow's scoring protocol (dataframe_split, dataframe_records,
instances, inputs, with optional params) and also the bare pandas orientations
MLflow 1.x accepted: `df.to_json(orient="split")`, which the reference sends to
SageMaker, and `orient="records"`. CSV comes with or without a header row.

Decoding is bounded: the JSON nesting depth, rows, columns and values (rows times
columns) are checked against Limits before any table is built, and records with
keys the model's signature does not name are refused at the first such record,
so the work stays linear in the body whatever its shape.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlstack.serving.config import Limits
from mlstack.serving.content_types import CSV, JSON
from mlstack.serving.errors import BadRequest

WRAPPED_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARAMS_KEY = "params"
SPLIT_KEYS = {"columns", "index", "data"}
FORMS_HELP = (
    'send {"dataframe_split": {"columns": [...], "data": [[...]]}}, '
    '{"dataframe_records": [{...}]}, {"instances": [...]}, {"inputs": ...} '
    'or a pandas split frame {"columns": [...], "index": [...], "data": [[...]]}'
)
DEFAULT_LIMITS = Limits()
# Python refuses to parse integers longer than this (sys.get_int_max_str_digits()).
INT_DIGITS_LIMIT = 4300
# Unknown column names listed in a message, at most.
NAMES_LISTED = 10


class KnownColumns(Protocol):
    """The signature's named columns, as far as parsing needs them (schema.TableSchema)."""

    by_name: Mapping[str, Any]

    def expected(self) -> str: ...


@dataclass(frozen=True)
class Table:
    """Rows of values; columns are None when the values are positional. matrix: the same
    rows as a float64 array, when they were converted to numbers all at once."""

    columns: list[str] | None
    rows: list[list[Any]]
    matrix: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ParsedInput:
    """A parsed request: a table when the body has one, else the raw form for MLflow."""

    table: Table | None
    raw: Any
    params: dict[str, Any] | None = None
    media_type: str = JSON
    csv_has_header: bool = False


# --- JSON ----------------------------------------------------------------------------------


def unknown_columns(names: list[str], known: KnownColumns) -> BadRequest:
    """The one refusal for column names the signature does not have."""
    listed = ", ".join(map(str, names[:NAMES_LISTED]))
    if len(names) > NAMES_LISTED:
        listed += f", ... ({len(names)} in all)"
    return BadRequest(f"unknown columns: {listed}; the model expects: {known.expected()}")


def parse_json(
    body: bytes,
    legacy_format: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    known: KnownColumns | None = None,
) -> ParsedInput:
    """Parse an application/json body into a table (or a raw form MLflow parses).

    `known` (the signature's columns) lets records with other keys be refused
    before any row is built.
    """
    document = _load_json(body, limits)
    context = _Context(limits, known)
    if legacy_format == "pandas-split":
        return ParsedInput(context.split(document, "the body"), {"dataframe_split": document})
    if legacy_format == "pandas-records":
        table = context.records(document, "the body")
        return ParsedInput(table, {"dataframe_records": document})
    if isinstance(document, dict):
        return _parse_object(document, context)
    if isinstance(document, list):
        # pandas orient="records" (or a list of rows), as MLflow 1.x accepted.
        return ParsedInput(context.instances(document, "the body"), {"instances": document})
    raise BadRequest(f"the JSON body is a {type(document).__name__}: {FORMS_HELP}")


def _too_deep(limits: Limits) -> BadRequest:
    return BadRequest(
        f"the JSON nests deeper than INFERENCE_MAX_DEPTH={limits.max_depth} levels: "
        "send a flatter body, or raise INFERENCE_MAX_DEPTH"
    )


def _load_json(body: bytes, limits: Limits) -> Any:
    """json.loads with every failure a 400 naming the problem (never Python's own text)."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError as error:
        raise BadRequest(f"malformed JSON: the body is not UTF-8 ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
    except RecursionError:
        # The C decoder stops near Python's recursion limit (about 1,000 levels).
        raise _too_deep(limits) from None
    except ValueError:
        # The only other ValueError json.loads raises: an integer too long to convert.
        raise BadRequest(
            f"the JSON has an integer of more than {INT_DIGITS_LIMIT} digits, which no "
            "model input can hold: send numbers a model can take"
        ) from None
    # A document nests no deeper than it has opening brackets (some may sit in strings).
    if body.count(b"[") + body.count(b"{") > limits.max_depth:
        _check_depth(document, limits)
    return document


def _check_depth(document: Any, limits: Limits) -> None:
    """Refuse documents nested deeper than limits.max_depth, level by level (no recursion)."""
    level = [document] if isinstance(document, list | dict) else []
    depth = 0
    while level:
        depth += 1
        if depth > limits.max_depth:
            raise _too_deep(limits)
        deeper = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            kinds = set(map(type, children))  # C-speed scan; most nodes hold only scalars
            if list in kinds or dict in kinds:
                deeper.extend(child for child in children if isinstance(child, list | dict))
        level = deeper


def _parse_object(document: dict[str, Any], context: _Context) -> ParsedInput:
    keys = [key for key in WRAPPED_KEYS if key in document]
    if len(keys) > 1:
        raise BadRequest(f"the body has {', '.join(keys)}: send exactly one of them")
    if not keys:
        if "data" in document and set(document) <= SPLIT_KEYS:
            # The bare pandas split orientation: df.to_json(orient="split").
            table = context.split(document, "the body")
            return ParsedInput(table, {"dataframe_split": document})
        fields = ", ".join(map(repr, list(document)[:5])) or "no fields"
        raise BadRequest(f"the JSON object has {fields}: {FORMS_HELP}")
    key = keys[0]
    extra = [name for name in document if name not in (key, PARAMS_KEY)]
    if extra:
        raise BadRequest(f"unexpected fields next to {key!r}: {', '.join(map(repr, extra))}")
    params = document.get(PARAMS_KEY)
    if params is not None and not isinstance(params, dict):
        raise BadRequest('"params" must be a JSON object of parameter names to values')
    value = document[key]
    if key == "dataframe_split":
        table = context.split(value, key)
    elif key == "dataframe_records":
        table = context.records(value, key)
    else:
        table = context.instances(value, key)
    return ParsedInput(table, {key: value}, params)


def _no_rows(where: str) -> BadRequest:
    return BadRequest(f"{where} has no rows to predict")


def check_size(rows: int, columns: int, limits: Limits, where: str) -> None:
    """Refuse a table larger than the limits, before it is built."""
    if rows > limits.max_rows:
        raise BadRequest(
            f"{where} has {rows} rows, more than INFERENCE_MAX_ROWS={limits.max_rows}: "
            "send fewer rows per request, or raise INFERENCE_MAX_ROWS"
        )
    if columns > limits.max_columns:
        raise BadRequest(
            f"{where} has {columns} columns, more than INFERENCE_MAX_COLUMNS="
            f"{limits.max_columns}: send the model's columns only, or raise INFERENCE_MAX_COLUMNS"
        )
    if rows * columns > limits.max_values:
        raise BadRequest(
            f"{where} has {rows} rows of {columns} columns, more than INFERENCE_MAX_VALUES="
            f"{limits.max_values} values: send fewer rows per request, or raise "
            "INFERENCE_MAX_VALUES"
        )


@dataclass(frozen=True)
class _Context:
    """Builds tables from the JSON forms within the limits, knowing the signature's columns."""

    limits: Limits
    known: KnownColumns | None

    def split(self, value: Any, where: str) -> Table:
        if not isinstance(value, dict) or "data" not in value:
            raise BadRequest(f'{where} must be an object with "data" (and "columns"): {FORMS_HELP}')
        unexpected = [key for key in value if key not in SPLIT_KEYS]
        if unexpected:
            raise BadRequest(f"unexpected fields in {where}: {', '.join(map(repr, unexpected))}")
        data, columns = value["data"], value.get("columns")
        if not isinstance(data, list):
            raise BadRequest(f'"data" in {where} must be a list of rows')
        if not data:
            raise _no_rows(where)
        if columns is not None:
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
                raise BadRequest(f'"columns" in {where} must be a list of column names')
            if len(set(columns)) != len(columns):
                raise BadRequest(f'"columns" in {where} names a column twice')
        if columns is not None and len(columns) == 1 and not isinstance(data[0], list):
            data = [[cell] for cell in data]
        width = len(columns) if columns is not None else None
        for index, row in enumerate(data):
            if not isinstance(row, list):
                raise BadRequest(f'row {index} of "data" in {where} is not a list of values')
            if width is None:
                width = len(row)
            if len(row) != width:
                raise BadRequest(
                    f'row {index} of "data" in {where} has {len(row)} values, expected {width}'
                )
        check_size(len(data), width or 0, self.limits, where)
        return Table(columns, data)

    def records(self, value: Any, where: str) -> Table:
        if not isinstance(value, list) or not all(isinstance(record, dict) for record in value):
            raise BadRequest(f"{where} must be a list of objects, one per row")
        if not value:
            raise _no_rows(where)
        known = self.known.by_name if self.known is not None else None
        columns: list[str] = []
        seen: set[str] = set()
        first_keys = value[0].keys()
        for record in value:
            if record.keys() == first_keys and columns:
                continue  # the common case: every record has the same keys
            for name in record:
                if name in seen:
                    continue
                if known is not None and name not in known:
                    # Refused here, before a row is built: a key the model does not
                    # take cannot widen the table (records x union of keys).
                    assert self.known is not None
                    raise unknown_columns([n for n in record if n not in known], self.known)
                seen.add(name)
                columns.append(name)
                if len(columns) > self.limits.max_columns:
                    check_size(len(value), len(columns), self.limits, where)
        check_size(len(value), len(columns), self.limits, where)
        # A key a record lacks is a missing value, as pandas reads records.
        rows = [[record.get(name) for name in columns] for record in value]
        return Table(columns, rows)

    def instances(self, value: Any, where: str) -> Table | None:
        """Rows from TF-serving style inputs; None when they are tensors, not a table."""
        if isinstance(value, dict):
            if not value:
                raise _no_rows(where)
            columns = list(value)
            if all(isinstance(v, list) for v in value.values()):
                lengths = {len(v) for v in value.values()}
                if len(lengths) != 1:
                    raise BadRequest(f"the columns in {where} have different lengths")
                if lengths == {0}:
                    raise _no_rows(where)
                check_size(lengths.pop(), len(columns), self.limits, where)
                return Table(columns, [list(row) for row in zip(*value.values(), strict=True)])
            if not any(isinstance(v, list | dict) for v in value.values()):
                check_size(1, len(columns), self.limits, where)
                return Table(columns, [list(value.values())])
            return None
        if not isinstance(value, list):
            raise BadRequest(f"{where} must be a list of rows or an object of columns")
        if not value:
            raise _no_rows(where)
        if all(isinstance(row, dict) for row in value):
            return self.records(value, where)
        if all(isinstance(row, list) for row in value):
            width = len(value[0])
            for index, row in enumerate(value):
                if len(row) != width:
                    raise BadRequest(
                        f"row {index} of {where} has {len(row)} values, expected {width}"
                    )
            check_size(len(value), width, self.limits, where)
            if any(isinstance(cell, list | dict) for cell in value[0]):
                return None
            return Table(None, value)
        if not any(isinstance(row, list | dict) for row in value):
            check_size(len(value), 1, self.limits, where)
            return Table(None, [[cell] for cell in value])
        raise BadRequest(f"{where} mixes rows of different kinds")


# --- CSV -----------------------------------------------------------------------------------


def parse_csv(
    body: bytes, column_names: list[str] | None, limits: Limits = DEFAULT_LIMITS
) -> ParsedInput:
    """Parse text/csv; a first row made only of the model's column names is a header.

    Without a signature, a first row with any non-numeric cell is taken as a header.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the CSV body is not UTF-8 ({error.reason})") from None
    # Every line is a row: refuse too many before the reader builds them.
    check_size(text.count("\n") - 1, 0, limits, "the CSV body")
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as error:
        raise BadRequest(f"malformed CSV: {error}") from None
    if not rows:
        raise BadRequest("the CSV body has no rows to predict")
    first = [cell.strip() for cell in rows[0]]
    if column_names is not None:
        names = set(column_names)
        has_header = all(cell in names for cell in first)
    else:
        has_header = not all(_is_number(cell) for cell in first)
    columns = first if has_header else None
    data = rows[1:] if has_header else rows
    if not data:
        raise BadRequest("the CSV body has a header but no rows to predict")
    if columns is not None and len(set(columns)) != len(columns):
        raise BadRequest("the CSV header names a column twice")
    width = len(columns) if columns is not None else len(data[0])
    check_size(len(data), width, limits, "the CSV body")
    for index, row in enumerate(data):
        if len(row) != width:
            raise BadRequest(f"CSV row {index} has {len(row)} values, expected {width}")
    return ParsedInput(Table(columns, data), text, media_type=CSV, csv_has_header=has_header)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
