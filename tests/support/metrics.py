"""What a training job's metrics must be, worked out here from what the job left behind: its
saved model and the held-out test set, with numpy. Nothing of the job's own code is used, so
a metric the job computes or names wrongly (the percentile that picks the champion) shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from support.data import TARGET

PERCENTILES = (10, 50, 90)  # the reference's metrics: AE-at-{q}th-percentile


def absolute_errors(model_uri: str | Path, test_csv: Path, target: str = TARGET) -> np.ndarray:
    """|prediction - actual| of the saved model on every row of the test set; the model
    picks its features from the CSV by its own signature, or takes every column but the
    target when it was logged without one (as the reference script logs it)."""
    model = mlflow.pyfunc.load_model(str(model_uri))
    test = pd.read_csv(test_csv)
    schema = model.metadata.get_input_schema()
    features = schema.input_names() if schema else [c for c in test.columns if c != target]
    predicted = np.asarray(model.predict(test[features].astype("float64")), dtype=np.float64)
    return np.abs(predicted.reshape(-1) - test[target].to_numpy(dtype=np.float64))


def expected_metrics(model_uri: str | Path, test_csv: Path, target: str = TARGET) -> dict:
    """The absolute-error percentiles (numpy's default, linear interpolation), MAE and RMSE."""
    errors = absolute_errors(model_uri, test_csv, target)
    metrics = {f"AE-at-{q}th-percentile": float(np.percentile(errors, q)) for q in PERCENTILES}
    metrics["mae"] = float(errors.mean())
    metrics["rmse"] = float(np.sqrt(np.mean(errors**2)))
    return metrics


def assert_metrics_match(
    logged: Mapping[str, float], model_uri: str | Path, test_csv: Path, target: str = TARGET
) -> None:
    """Every expected metric the run logged (the percentiles at least) is the value worked
    out here, to the last few bits (the job and this process run the same scikit-learn)."""
    expected = expected_metrics(model_uri, test_csv, target)
    names = [name for name in expected if name in logged]
    percentiles = {f"AE-at-{q}th-percentile" for q in PERCENTILES}
    assert percentiles <= set(names), f"the run logged {sorted(logged)}"
    wrong = {
        name: f"logged {logged[name]!r}, the model's errors give {expected[name]!r}"
        for name in names
        if logged[name] != pytest.approx(expected[name], rel=1e-9, abs=1e-9)
    }
    assert not wrong, wrong
