"""Fitting the forest (mlstack.training.train)."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from mlstack.training import train
from mlstack.training.data import Dataset
from mlstack.training.hyperparameters import Hyperparameters

from .helpers import FEATURES, METRIC_REGEXES, TARGET


def test_the_fitted_forest_predicts_the_same_bits_every_time(
    diabetes: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # Fitted on every core, it predicts on one: summed over threads, the trees' answers came
    # back in another order from call to call and the last bit moved (the served model too).
    train_frame, test_frame = diabetes
    features = FEATURES.split()
    hyperparameters = Hyperparameters(target=TARGET, random_state=0)
    forest = train.fit(hyperparameters, Dataset(train_frame[features], train_frame[TARGET]))
    rows = test_frame[features].head(3)
    answers = {forest.predict(rows).tobytes() for _ in range(50)}
    assert len(answers) == 1


def held_out(actual: list[float]) -> Dataset:
    return Dataset(pd.DataFrame({"x": range(len(actual))}, dtype="float64"), pd.Series(actual))


def test_evaluate_gives_the_absolute_error_percentiles_worked_out_by_hand() -> None:
    # Errors 0, 1, ..., 10, half of them from predictions below the actual value: the
    # percentiles fall on whole ranks (numpy's default, linear interpolation between ranks).
    actual = [100.0 + 3 * k for k in range(11)]
    predictions = np.array([a + (k if k % 2 else -k) for k, a in enumerate(actual)])
    metrics = train.evaluate(predictions, held_out(actual))
    assert metrics["AE-at-10th-percentile"] == 1.0
    assert metrics["AE-at-50th-percentile"] == 5.0
    assert metrics["AE-at-90th-percentile"] == 9.0
    assert metrics["mae"] == 5.0
    assert metrics["rmse"] == pytest.approx(math.sqrt(sum(k * k for k in range(11)) / 11))
    mean = sum(actual) / 11
    total = sum((a - mean) ** 2 for a in actual)
    assert metrics["r2"] == pytest.approx(1 - sum(k * k for k in range(11)) / total)
    assert set(metrics) == {
        "AE-at-10th-percentile", "AE-at-50th-percentile", "AE-at-90th-percentile",
        "mae", "rmse", "r2",
    }  # fmt: skip


def test_evaluate_interpolates_between_ranks_and_leaves_out_r2_on_one_row() -> None:
    metrics = train.evaluate(np.array([11.0, 18.0, 33.0, 36.0]), held_out([10, 20, 30, 40]))
    # Errors 1, 2, 3, 4: rank (4 - 1) * q / 100, between neighbours.
    assert metrics["AE-at-10th-percentile"] == pytest.approx(1.3)
    assert metrics["AE-at-50th-percentile"] == pytest.approx(2.5)
    assert metrics["AE-at-90th-percentile"] == pytest.approx(3.7)
    one = train.evaluate(np.array([7.0]), held_out([5.0]))
    assert one["AE-at-50th-percentile"] == 2.0 and one["mae"] == 2.0
    assert "r2" not in one  # undefined on one sample


def test_metric_lines_are_what_sagemakers_definitions_read() -> None:
    for name, pattern in METRIC_REGEXES.items():
        line = train.metric_line(name, 0.00001234 if name != "r2" else -0.5)
        [value] = re.findall(pattern, line)
        assert float(value) == pytest.approx(0.000012 if name != "r2" else -0.5)
