"""Exact fast paths for common scikit-learn models, chosen per model at start-up.

A fast path computes what the model's pyfunc predict computes, with scikit-learn's
own compiled routines or the same arithmetic in the same order, without the per-call
overhead around it (MLflow's schema enforcement, scikit-learn's validation, joblib,
an OpenMP region per tree). It serves only after proof.py has shown it answers bit
for bit as the model itself; otherwise the server serves the generic pyfunc path and
logs why. The families: trees.py (forests, single trees, GradientBoosting*),
hist.py (HistGradientBoosting*), linear.py (linear models, pipelines of scalers
before one).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np

from mlstack.serving.fastpath import hist, linear, trees
from mlstack.serving.fastpath.base import (
    EXACT_INTEGER_LIMIT,
    FastModel,
    Unsupported,
    computes_in_float32,
    feature_order,
    raw_model,
)
from mlstack.serving.fastpath.proof import probe_rows, verify

__all__ = [
    "EXACT_INTEGER_LIMIT",
    "FastModel",
    "Unsupported",
    "build",
    "computes_in_float32",
    "feature_order",
    "probe_rows",
    "raw_model",
    "verify",
]


def build(
    estimator: Any, order: Sequence[str], method: str, float32_columns: Sequence[bool] = ()
) -> FastModel:
    """The fast path for the estimator's `method` (the pyfunc flavour's predict_fn), its
    features in `order`; float32_columns marks the signature's 'float' columns.
    Unsupported says why there is none."""
    for family in (trees, hist, linear):
        model = family.build(estimator, order, method)
        if model is not None:
            if model.compares_in is np.float64 and any(float32_columns):
                return Float32Columns(model, float32_columns)
            return model
    raise Unsupported("no fast path reproduces it")


class Float32Columns(FastModel):
    """A fast path computing in float64 behind a signature with 'float' columns: MLflow
    hands those columns to scikit-learn as float32, so they are rounded first."""

    def __init__(self, inner: FastModel, float32_columns: Sequence[bool]) -> None:
        super().__init__(inner.feature_order)
        self.inner = inner
        self.columns = np.flatnonzero(np.asarray(float32_columns, dtype=bool))
        self.description = inner.description
        self.compares_in = inner.compares_in

    def predict(self, matrix: np.ndarray) -> np.ndarray | None:
        rounded = matrix.copy()
        rounded[:, self.columns] = matrix[:, self.columns].astype(np.float32)
        return self.inner.predict(rounded)

    def split_points(self) -> list[np.ndarray] | None:
        return self.inner.split_points()

    def reference_context(self) -> AbstractContextManager[Any]:
        return self.inner.reference_context()
