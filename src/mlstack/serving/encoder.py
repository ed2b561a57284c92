"""Response bodies out: predictions as JSON or CSV, errors as MLflow's JSON error body.

Predictions go out as {"predictions": [...]}, MLflow's response shape, or as CSV
(one line per row, as SageMaker batch transform assembles them).
"""

from __future__ import annotations

import base64
import csv
import datetime
import io
import json
from typing import Any

import numpy as np

from mlstack.serving.errors import NotAcceptable


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
    numbers = isinstance(predictions, np.ndarray) and predictions.dtype.kind in "fiu"
    if numbers and predictions.ndim == 1:
        # One number a row (a regressor's answer): the text csv.writer writes for each, str().
        values = predictions.tolist()
        return ("\n".join(map(str, values)) + "\n").encode() if values else b""
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
