"""Adaptive batching: concurrent requests answered by one model call, only where it is exact.

Requests that arrive together (on a worker's event loop in one turn, or queued for its
prediction thread) and go the same route are stacked into one matrix, predicted in one call,
and the answer is cut back into each request's rows: one call's fixed cost (scikit-learn's
checks, MLflow's, the fast path's numpy steps) is paid once for the batch. A batch is at most
INFERENCE_BATCH_MAX_ROWS rows, and a request waits at most INFERENCE_BATCH_WAIT_MS for
others (0: only for those already there).

Each request must get exactly the answer it gets alone. That holds for models whose rows do
not interact, and whose arithmetic does not change with the number of rows (a BLAS product of
one row and of many may round differently). So at start-up each route is proven on probe
rows: every row's answer inside batches of several sizes and offsets must encode to the same
bytes, JSON and CSV, as its answer alone; otherwise the route predicts one request at a time.
At run time, a batch whose answer is not of the proven kind, or that fails, is predicted again
one request at a time, so an error belongs to the request that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlstack.serving import encoder
from mlstack.serving.errors import RequestError

log = logging.getLogger(__name__)

# Probe rows for the proof, and the batch sizes tried (each also capped by the setting).
PROBE_ROWS = 16
BATCH_SIZES = (2, 3, 5, 8, 16)

Outcome = Any  # a prediction, or the exception that predicting raised


def kind(predictions: Any) -> tuple[Any, ...] | None:
    """What must stay the same for a batch's answer to be cut into rows: the container and
    its element types; None for answers that cannot be cut by rows."""
    if isinstance(predictions, np.ndarray) and predictions.ndim >= 1:
        return ("ndarray", predictions.dtype.str, predictions.shape[1:])
    if hasattr(predictions, "columns") and hasattr(predictions, "iloc"):
        dtypes = tuple(str(dtype) for dtype in predictions.dtypes)
        return ("frame", tuple(map(str, predictions.columns)), dtypes)
    if hasattr(predictions, "iloc") and hasattr(predictions, "dtype"):
        return ("series", str(predictions.dtype))
    if isinstance(predictions, list):
        return ("list",)
    return None


def split(predictions: Any, counts: Sequence[int]) -> list[Any] | None:
    """The answer cut into consecutive parts of `counts` rows; None if it has other rows."""
    total = sum(counts)
    if kind(predictions) is None or len(predictions) != total:
        return None
    rows = predictions.iloc if hasattr(predictions, "iloc") else predictions
    parts, start = [], 0
    for count in counts:
        parts.append(rows[start : start + count])
        start += count
    return parts


def answer_bytes(predictions: Any) -> bytes:
    """What a client receives for these predictions, as JSON and as CSV."""
    try:
        as_csv = encoder.csv_predictions(predictions)
    except RequestError:
        as_csv = b""
    return encoder.json_predictions(predictions) + b"\0" + as_csv


def probe_rows(example: np.ndarray | None, integer_columns: Sequence[bool]) -> np.ndarray:
    """Rows to prove batching on: the input example's, then rows that mix and scale its
    values (or standard normal values without one); whole numbers in integer columns."""
    width = len(integer_columns)
    rng = np.random.default_rng(0)
    if example is not None and example.size and np.isfinite(example).all():
        base = example.reshape(-1, width)[:PROBE_ROWS]
    else:
        base = rng.normal(scale=10.0, size=(4, width))
    picked = base[rng.integers(0, len(base), size=(PROBE_ROWS, width)), np.arange(width)]
    mixed = picked * rng.uniform(0.5, 1.5, size=picked.shape)
    rows = np.vstack([base, mixed])[:PROBE_ROWS]
    whole = np.asarray(integer_columns, dtype=bool)
    rows[:, whole] = np.round(rows[:, whole])
    return rows


def prove(
    predict: Callable[[np.ndarray], Any],
    rows: np.ndarray,
    alone: Sequence[bytes | None],
    max_rows: int,
) -> tuple[tuple[Any, ...] | None, str | None]:
    """Whether predict(batch), cut into rows, answers each row as `alone` says it is answered
    by itself (None: that row fails alone, and is left out of batches).

    Returns the proven kind of answer, or None and the reason batching is not exact.
    """
    proven: tuple[Any, ...] | None = None
    usable = [index for index, answer in enumerate(alone) if answer is not None]
    sizes = [size for size in BATCH_SIZES if size <= min(max_rows, len(usable))]
    if not sizes:
        return None, "too few probe rows the model answers"
    for size in sizes:
        # Consecutive batches, then the same rows in reverse order: other neighbours.
        for order in (usable, usable[::-1]):
            for start in range(0, len(order) - size + 1, size):
                chosen = order[start : start + size]
                try:
                    answer = predict(rows[chosen])
                except Exception as error:  # a batch the rows alone do not fail on
                    return None, f"a batch of {size} rows failed: {error}"
                parts = split(answer, [1] * size)
                if parts is None:
                    return None, f"the answer to {size} rows is not one row per input row"
                if proven is None:
                    proven = kind(answer)
                elif kind(answer) != proven:
                    return None, "the answer's type changes with the rows"
                for index, part in zip(chosen, parts, strict=True):
                    if answer_bytes(part) != alone[index]:
                        return None, f"row {index} differs in a batch of {size} rows"
    return proven, None


def group(rows: Sequence[int], max_rows: int) -> list[list[int]]:
    """Indexes of consecutive requests gathered into batches of at most max_rows rows; a
    request of more rows than that is a batch of its own."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, count in enumerate(rows):
        if current and total + count > max_rows:
            batches.append(current)
            current, total = [], 0
        current.append(index)
        total += count
    if current:
        batches.append(current)
    return batches


def run_batched(
    predict_many: Callable[[list[np.ndarray]], Any],
    predict_one: Callable[[int], Outcome],
    matrices: Sequence[np.ndarray],
    proven: tuple[Any, ...],
) -> list[Outcome]:
    """Predict the stacked matrices once and cut the answer per request; if that fails or
    answers otherwise than proven, each request alone (predict_one(index), which returns
    the prediction or the exception)."""
    try:
        answer = predict_many(list(matrices))
        parts = split(answer, [len(matrix) for matrix in matrices])
        if parts is not None and kind(answer) == proven:
            return parts
    except Exception as error:  # one request's bad row: each is answered alone below
        log.debug("batch of %d requests predicted one by one: %r", len(matrices), error)
    return [predict_one(index) for index in range(len(matrices))]
