"""The generic path's TABLE route and batching, proven at start-up: every answer exactly the
model's own for that row alone, whichever way it was computed. Models that have a fast path
are loaded with it off (INFERENCE_FAST_PATH=false), which serves them by the generic path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlstack.serving import batching, decoder
from mlstack.serving.predictor import FAST, OTHER, TABLE, Predictor, load_predictor

from .models import Diabetes, save_code_model, save_model

BATCH = 32
CENTRED_MODEL = '''
import mlflow.pyfunc
from mlflow.models import set_model


class Centred(mlflow.pyfunc.PythonModel):
    """Each row's sum minus the mean over the rows it came with: rows interact."""

    def predict(self, context, model_input, params=None):
        sums = model_input.sum(axis=1)
        return (sums - sums.mean()).to_numpy()


set_model(Centred())
'''


def one_row(rows: pd.DataFrame, index: int) -> decoder.ParsedInput:
    body = json.dumps({"dataframe_split": json.loads(rows.iloc[[index]].to_json(orient="split"))})
    return decoder.parse_json(body.encode())


def answers(predictions) -> bytes:
    return batching.answer_bytes(predictions)


def alone_and_together(predictor: Predictor, rows: pd.DataFrame, count: int = 12):
    """Each row's answer alone (mlflow.pyfunc), and each from run_many of them all."""
    works = [predictor.prepare(one_row(rows, index)) for index in range(count)]
    together = predictor.run_many(works)
    alone = [predictor.model.predict(rows.iloc[[index]]) for index in range(count)]
    return works, alone, together


@pytest.fixture(scope="module")
def boosting(diabetes_data: Diabetes, tmp_path_factory) -> tuple[Predictor, object]:
    estimator = GradientBoostingRegressor(n_estimators=20, random_state=0)
    estimator.fit(diabetes_data.train, diabetes_data.y_train)
    path = save_model(estimator, diabetes_data, tmp_path_factory.mktemp("gb") / "m")
    return load_predictor(path, fast_path=False, batch_max_rows=BATCH), estimator


def test_a_scikit_learn_model_is_called_directly_and_batched(
    boosting, diabetes_data: Diabetes
) -> None:
    predictor, estimator = boosting
    assert predictor.fast is None
    assert predictor.generic_note.startswith("scikit-learn's GradientBoostingRegressor directly")
    assert TABLE in predictor.proven
    assert predictor.batching_note.startswith("on (up to 32 rows")
    works, alone, together = alone_and_together(predictor, diabetes_data.test)
    assert {work.route for work in works} == {TABLE}
    assert [answers(a) for a in together] == [answers(a) for a in alone]
    assert np.concatenate(together).tolist() == estimator.predict(diabetes_data.test[:12]).tolist()


def test_missing_values_and_params_go_through_mlflow_pyfunc(
    boosting, diabetes_data: Diabetes
) -> None:
    predictor, _ = boosting
    rows = diabetes_data.test.iloc[:2].copy()
    rows.iloc[0, 3] = np.nan  # scikit-learn's gradient boosting refuses it, as MLflow serves it
    parsed = decoder.parse_json(
        json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))}).encode()
    )
    work = predictor.prepare(parsed)
    assert work.route == OTHER
    [outcome] = predictor.run_many([work])
    assert "the model refused the input" in str(outcome)
    split = json.loads(diabetes_data.test.iloc[:1].to_json(orient="split"))
    with_params = json.dumps({"dataframe_split": split, "params": {"x": 1}}).encode()
    assert predictor.prepare(decoder.parse_json(with_params)).route == OTHER


def test_batched_answers_are_each_rows_own_or_batching_is_off(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    """A pipeline ending in Ridge: a BLAS product of one row and of many may round apart
    (it does on this machine's OpenBLAS); whichever the proof found, no answer changes."""
    estimator = make_pipeline(StandardScaler(), Ridge()).fit(
        diabetes_data.train, diabetes_data.y_train
    )
    predictor = load_predictor(save_model(estimator, diabetes_data, tmp_path / "m"), False, BATCH)
    assert predictor.generic_note.startswith("scikit-learn's Pipeline directly")
    assert (TABLE in predictor.proven) == predictor.batching_note.startswith("on")
    _, alone, together = alone_and_together(predictor, diabetes_data.test, 16)
    assert [answers(a) for a in together] == [answers(a) for a in alone]


def test_a_model_whose_rows_interact_is_never_batched(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    code = tmp_path / "centred.py"
    code.write_text(CENTRED_MODEL)
    example = diabetes_data.train.head(5)
    output = (example.sum(axis=1) - example.sum(axis=1).mean()).to_numpy()
    predictor = load_predictor(save_code_model(code, example, output, tmp_path / "m"), True, 8)
    assert predictor.generic_note.startswith("mlflow.pyfunc on typed frames (exact on")
    assert predictor.proven == {}
    assert predictor.batching_note.startswith("off (not exact: row")
    _, alone, together = alone_and_together(predictor, diabetes_data.test, 6)
    assert [answers(a) for a in together] == [answers(a) for a in alone]
    assert [a.tolist() for a in together] == [[0.0]] * 6  # each row alone: its own mean


def test_a_candidate_that_is_not_exact_is_not_used(
    monkeypatch, boosting, diabetes_data: Diabetes
) -> None:
    predictor, estimator = boosting

    def candidates(self: Predictor):
        return [
            ("off by one", lambda frame: estimator.predict(frame) + 1),
            ("mlflow.pyfunc on typed frames", self.model.predict),
        ]

    monkeypatch.setattr(Predictor, "_table_candidates", candidates)
    fallback = Predictor(predictor.model, None, fast_path=False, batch_max_rows=BATCH)
    assert fallback.generic_note.startswith("mlflow.pyfunc on typed frames")
    work = fallback.prepare(one_row(diabetes_data.test, 0))
    assert fallback.run(work).tolist() == estimator.predict(diabetes_data.test.iloc[[0]]).tolist()


def test_fast_path_requests_are_batched_exactly(
    forest_model_dir: Path, forest_model, diabetes_data: Diabetes
) -> None:
    predictor = load_predictor(forest_model_dir, batch_max_rows=BATCH)
    assert FAST in predictor.proven
    works, _, together = alone_and_together(predictor, diabetes_data.test, 8)
    assert {work.route for work in works} == {FAST}
    expected = forest_model.predict(diabetes_data.test.iloc[:8])
    assert np.concatenate(together).tolist() == expected.tolist()


def test_a_linear_fast_path_batches_only_where_exact(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    """The fast path's matrix product goes through the same batching proof as the generic
    path: batched or not, each row's answer is the one it gets alone."""
    estimator = make_pipeline(StandardScaler(), Ridge()).fit(
        diabetes_data.train, diabetes_data.y_train
    )
    predictor = load_predictor(save_model(estimator, diabetes_data, tmp_path / "m"), True, BATCH)
    assert predictor.fast is not None
    assert (FAST in predictor.proven) == predictor.batching_note.startswith("on")
    works, alone, together = alone_and_together(predictor, diabetes_data.test, 16)
    assert {work.route for work in works} == {FAST}
    assert [answers(a) for a in together] == [answers(a) for a in alone]
