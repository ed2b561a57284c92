"""Request bodies in, response bodies out.

JSON inputs follow MLflow's scoring protocol (dataframe_split, dataframe_records,
instances, inputs, with optional params) and also the bare pandas orientations
MLflow 1.x accepted: `df.to_json(orient="split")`, which the reference sends to
SageMaker, and `orient="records"`. CSV comes with or without a header row.
Predictions go out as {"predictions": [...]}, MLflow's response shape, or as CSV
(one line per row, as SageMaker batch transform assembles them).
"""

from __future__ import annotations

import base64
import csv
import datetime
import io
import json
from dataclasses import dataclass
from typing import Any

from mlstack_inference.errors import BadRequest, NotAcceptable, UnsupportedMediaType

JSON = "application/json"
CSV = "text/csv"
WRAPPED_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARAMS_KEY = "params"
SPLIT_KEYS = {"columns", "index", "data"}
LEGACY_FORMATS = {"pandas-split", "pandas-records"}
FORMS_HELP = (
    'send {"dataframe_split": {"columns": [...], "data": [[...]]}}, '
    '{"dataframe_records": [{...}]}, {"instances": [...]}, {"inputs": ...} '
    'or a pandas split frame {"columns": [...], "index": [...], "data": [[...]]}'
)


@dataclass(frozen=True)
class Table:
    """Rows of values; columns are None when the values are positional."""

    columns: list[str] | None
    rows: list[list[Any]]


@dataclass(frozen=True)
class ParsedInput:
    """A parsed request: a table when the body has one, else the raw form for MLflow."""

    table: Table | None
    raw: Any
    params: dict[str, Any] | None = None
    media_type: str = JSON
    csv_has_header: bool = False


# --- content negotiation -------------------------------------------------------------------


def parse_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """The media type and its parameters; 415 for anything but JSON and CSV in UTF-8."""
    if not header or not header.strip():
        raise UnsupportedMediaType(f"no Content-Type: send {JSON} or {CSV} (UTF-8)")
    media, *rest = (part.strip() for part in header.split(";"))
    media = media.lower()
    params = {}
    for part in rest:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"').lower()
    if media not in (JSON, CSV):
        raise UnsupportedMediaType(f"unsupported Content-Type {media!r}: send {JSON} or {CSV}")
    if params.get("charset", "utf-8") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"unsupported charset {params['charset']!r}: send UTF-8")
    if media == JSON and params.get("format") not in (None, *LEGACY_FORMATS):
        raise UnsupportedMediaType(
            f"unsupported format {params['format']!r}: use pandas-split or pandas-records"
        )
    return media, params


def choose_output(accept: str | None, default: str = JSON) -> str:
    """The response media type from the Accept header, in the client's order of listing."""
    if not accept or not accept.strip():
        return default
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media == "*/*":
            return default
        if media in (JSON, "application/*"):
            return JSON
        if media in (CSV, "text/*"):
            return CSV
    raise NotAcceptable(f"cannot answer in {accept!r}: accept {JSON} or {CSV}")


# --- JSON ----------------------------------------------------------------------------------


def parse_json(body: bytes, legacy_format: str | None = None) -> ParsedInput:
    """Parse an application/json body into a table (or a raw form MLflow parses)."""
    try:
        document = json.loads(body)
    except UnicodeDecodeError as error:
        raise BadRequest(f"malformed JSON: the body is not UTF-8 ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise BadRequest(f"malformed JSON: {error}") from None
    if legacy_format == "pandas-split":
        return ParsedInput(_split_table(document, "the body"), {"dataframe_split": document})
    if legacy_format == "pandas-records":
        return ParsedInput(_records_table(document, "the body"), {"dataframe_records": document})
    if isinstance(document, dict):
        return _parse_object(document)
    if isinstance(document, list):
        # pandas orient="records" (or a list of rows), as MLflow 1.x accepted.
        return ParsedInput(_instances_table(document, "the body"), {"instances": document})
    raise BadRequest(f"the JSON body is a {type(document).__name__}: {FORMS_HELP}")


def _parse_object(document: dict[str, Any]) -> ParsedInput:
    keys = [key for key in WRAPPED_KEYS if key in document]
    if len(keys) > 1:
        raise BadRequest(f"the body has {', '.join(keys)}: send exactly one of them")
    if not keys:
        if "data" in document and set(document) <= SPLIT_KEYS:
            # The bare pandas split orientation: df.to_json(orient="split").
            return ParsedInput(_split_table(document, "the body"), {"dataframe_split": document})
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
        table = _split_table(value, key)
    elif key == "dataframe_records":
        table = _records_table(value, key)
    else:
        table = _instances_table(value, key)
    return ParsedInput(table, {key: value}, params)


def _no_rows(where: str) -> BadRequest:
    return BadRequest(f"{where} has no rows to predict")


def _split_table(value: Any, where: str) -> Table:
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
    return Table(columns, data)


def _records_table(value: Any, where: str) -> Table:
    if not isinstance(value, list) or not all(isinstance(record, dict) for record in value):
        raise BadRequest(f"{where} must be a list of objects, one per row")
    if not value:
        raise _no_rows(where)
    columns = list(value[0])
    seen = set(columns)
    for record in value:
        if len(record) != len(columns) or record.keys() != seen:
            for name in record:
                if name not in seen:
                    seen.add(name)
                    columns.append(name)
    # A key a record lacks is a missing value, as pandas reads records.
    rows = [[record.get(name) for name in columns] for record in value]
    return Table(columns, rows)


def _instances_table(value: Any, where: str) -> Table | None:
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
            return Table(columns, [list(row) for row in zip(*value.values(), strict=True)])
        if not any(isinstance(v, list | dict) for v in value.values()):
            return Table(columns, [list(value.values())])
        return None
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a list of rows or an object of columns")
    if not value:
        raise _no_rows(where)
    if all(isinstance(row, dict) for row in value):
        return _records_table(value, where)
    if all(isinstance(row, list) for row in value):
        width = len(value[0])
        for index, row in enumerate(value):
            if len(row) != width:
                raise BadRequest(f"row {index} of {where} has {len(row)} values, expected {width}")
        if any(isinstance(cell, list | dict) for cell in value[0]):
            return None
        return Table(None, value)
    if not any(isinstance(row, list | dict) for row in value):
        return Table(None, [[cell] for cell in value])
    raise BadRequest(f"{where} mixes rows of different kinds")


# --- CSV -----------------------------------------------------------------------------------


def parse_csv(body: bytes, column_names: list[str] | None) -> ParsedInput:
    """Parse text/csv; a first row made only of the model's column names is a header.

    Without a signature, a first row with any non-numeric cell is taken as a header.
    """
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(f"the CSV body is not UTF-8 ({error.reason})") from None
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


# --- responses -----------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Predictions as plain JSON values; DataFrames become records, as MLflow answers."""
    if hasattr(value, "tolist") and not hasattr(value, "to_dict"):
        return value.tolist()  # numpy arrays and scalars
    if hasattr(value, "to_dict") and hasattr(value, "columns"):
        return [{k: _plain(v) for k, v in r.items()} for r in value.to_dict(orient="records")]
    if hasattr(value, "to_dict"):  # pandas Series
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and hasattr(value, "dtype") else value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def json_predictions(predictions: Any) -> bytes:
    """{"predictions": [...]} as UTF-8 bytes."""
    return json.dumps({"predictions": to_jsonable(predictions)}, default=_json_default).encode()


def csv_predictions(predictions: Any) -> bytes:
    """One line per row: a value, or comma-separated values; DataFrames with a header."""
    if hasattr(predictions, "to_csv") and hasattr(predictions, "columns"):
        return predictions.to_csv(index=False, lineterminator="\n").encode()
    rows = to_jsonable(predictions)
    if not isinstance(rows, list):
        rows = [rows]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        if isinstance(row, dict):
            raise NotAcceptable("these predictions are objects; ask for application/json")
        writer.writerow(row if isinstance(row, list) else [row])
    return out.getvalue().encode()


def error_body(code: str, message: str) -> bytes:
    """The JSON error body, shaped like MLflow's: error_code and message."""
    return json.dumps({"error_code": code, "message": message}).encode()
