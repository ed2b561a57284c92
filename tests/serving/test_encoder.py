"""Response encoding (predictions as JSON and CSV), without a model or a server."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlstack.serving import encoder
from mlstack.serving.errors import NotAcceptable


def test_json_predictions_round_trip_floats_exactly() -> None:
    values = np.array([0.1, 1 / 3, 137.85000000000002, -2.5e-310])
    decoded = json.loads(encoder.json_predictions(values))
    assert decoded == {"predictions": values.tolist()}
    assert np.array_equal(np.array(decoded["predictions"]), values)


def test_json_predictions_of_frames_are_records() -> None:
    frame = pd.DataFrame({"y": np.array([1, 2], dtype=np.int64), "label": ["a", "b"]})
    assert json.loads(encoder.json_predictions(frame)) == {
        "predictions": [{"y": 1, "label": "a"}, {"y": 2, "label": "b"}]
    }


def test_csv_predictions() -> None:
    assert encoder.csv_predictions(np.array([1.5, 1 / 3])) == b"1.5\n0.3333333333333333\n"
    assert encoder.csv_predictions(np.array([[1, 2], [3, 4]])) == b"1,2\n3,4\n"
    assert encoder.csv_predictions(pd.Series([1.0])) == b"1.0\n"
    assert encoder.csv_predictions(pd.DataFrame({"y": [1.0]})) == b"y\n1.0\n"
    with pytest.raises(NotAcceptable):
        encoder.csv_predictions([{"a": 1}])
