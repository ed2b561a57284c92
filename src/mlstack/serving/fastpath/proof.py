"""The start-up proof: a fast path serves only after it has answered, bit for bit, what
the model's own pyfunc predict answers, on rows chosen to find a difference.

Rows: the model's input example; for models that split (trees), values on sampled
split thresholds and on either side of them in the type the model compares in
(float32 neighbours for scikit-learn's trees, float64 ones for HistGradientBoosting),
integer columns the whole numbers either side; for models that do not, random values
over twelve orders of magnitude (integers for integer columns).
Batches: all rows at once, then runs of 1, 2, 3, ... rows: BLAS's kernels and the
fast paths' engines change with the batch size, and each size must agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlstack.serving.fastpath.base import FastModel

PROBE_ROWS = 256
THRESHOLDS_PER_FEATURE = 64
LONGEST_RUN = 22  # runs of 1..22 rows cover 253 rows


def probe_rows(
    model: FastModel,
    example: np.ndarray | None,
    integer_columns: Sequence[bool] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """The rows to compare on: the input example, then PROBE_ROWS probes."""
    width = len(model.feature_order)
    integer_columns = list(integer_columns or [False] * width)
    rng = np.random.default_rng(seed)
    points = model.split_points()
    candidates = []
    for feature in range(width):
        thresholds = points[feature] if points is not None else np.empty(0)
        if thresholds.size:
            count = min(THRESHOLDS_PER_FEATURE, thresholds.size)
            chosen = rng.choice(thresholds, size=count, replace=False)
            candidates.append(_around(chosen, integer_columns[feature], model.compares_in))
        elif integer_columns[feature]:
            candidates.append(rng.integers(-1000, 1000, THRESHOLDS_PER_FEATURE).astype(float))
        else:
            magnitude = 10.0 ** rng.uniform(-6, 6, THRESHOLDS_PER_FEATURE)
            candidates.append(rng.standard_normal(THRESHOLDS_PER_FEATURE) * magnitude)
    rows = np.column_stack([rng.choice(values, size=PROBE_ROWS) for values in candidates])
    if example is not None and example.size:
        rows = np.vstack([example.reshape(-1, width), rows])
    return rows


def _around(thresholds: np.ndarray, integer: bool, compared_in: type) -> np.ndarray:
    """Values on the thresholds and on either side of them."""
    if integer:
        return np.concatenate([np.floor(thresholds), np.ceil(thresholds)])
    typed = thresholds.astype(compared_in)
    up = np.nextafter(typed, compared_in(np.inf)).astype(np.float64)
    down = np.nextafter(typed, compared_in(-np.inf)).astype(np.float64)
    return np.concatenate([thresholds, up, down])


def batches(count: int) -> list[slice]:
    """All rows, then runs of 1, 2, ... LONGEST_RUN rows, and on."""
    runs = [slice(0, count)]
    start, size = 0, 1
    while start < count:
        runs.append(slice(start, min(start + size, count)))
        start += size
        size = size % LONGEST_RUN + 1
    return runs


def verify(
    model: FastModel, reference: Callable[[np.ndarray], Any], rows: np.ndarray
) -> str | None:
    """None if the fast path answers as reference (the model's own pyfunc) on every batch
    of rows, bit for bit; else where and how they differ."""
    with model.reference_context():
        for batch in batches(len(rows)):
            chunk = rows[batch]
            try:
                expected = reference(chunk)
            except Exception as error:  # the generic path itself failed: leave it to serve
                return f"the generic path failed on probe rows: {error}"
            actual = model.predict(chunk)
            if actual is None:
                continue  # the generic path answers these rows
            difference = compare(actual, expected)
            if difference is not None:
                return f"rows {batch.start}-{batch.stop - 1}: {difference}"
    return None


def compare(actual: np.ndarray, expected: Any) -> str | None:
    """None if both are the same array bit for bit: type, dtype, shape and every value
    (floats compared as bits, so -0.0 is not 0.0 and NaN is NaN)."""
    if not isinstance(expected, np.ndarray):
        return f"the model answers a {type(expected).__name__}"
    if actual.dtype != expected.dtype or actual.shape != expected.shape:
        return f"fast {actual.dtype}{actual.shape} vs model {expected.dtype}{expected.shape}"
    rows = max(len(expected), 1)
    if expected.dtype.kind in "fc":
        bits = np.ascontiguousarray(actual).view(np.uint8).reshape(rows, -1)
        model_bits = np.ascontiguousarray(expected).view(np.uint8).reshape(rows, -1)
        differs = np.any(bits != model_bits, axis=1)
    else:
        differs = np.asarray(actual != expected, dtype=bool).reshape(rows, -1).any(axis=1)
    if not differs.any():
        return None
    row = int(np.argmax(differs))
    return f"row {row}: fast {_plain(actual[row])!r} vs model {_plain(expected[row])!r}"


def _plain(value: Any) -> Any:
    """numpy values as Python's (0.0, not np.float64(0.0)), for the log line."""
    return value.tolist() if hasattr(value, "tolist") else value
