"""The start-up proof's parts, and the cases where a fast path must not serve or must
hand a request to the generic path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlstack.serving import decoder, fastpath
from mlstack.serving.errors import BadRequest
from mlstack.serving.fastpath import linear, proof
from mlstack.serving.predictor import load_predictor

from .fastpath_models import (
    one_thread,  # noqa: F401 (autouse: one OpenMP/BLAS thread)
    save_pickled,
)
from .models import Diabetes


def request(frame: pd.DataFrame) -> decoder.ParsedInput:
    body = json.dumps({"columns": list(frame.columns), "data": frame.values.tolist()})
    return decoder.parse_json(body.encode())


# --- comparing answers ---------------------------------------------------------------------


def test_compare_is_bit_for_bit() -> None:
    assert proof.compare(np.array([1.5, np.nan]), np.array([1.5, np.nan])) is None
    assert proof.compare(np.array([0.0]), np.array([-0.0])) == "row 0: fast 0.0 vs model -0.0"
    assert proof.compare(np.array([1.0]), np.array([np.nextafter(1.0, 2)])) is not None
    assert proof.compare(np.array([1.0]), np.array([1.0], dtype=np.float32)) is not None
    assert proof.compare(np.array([[1.0, 2.0]]), np.array([1.0, 2.0])) is not None
    assert proof.compare(np.array([1.0]), [1.0]) == "the model answers a list"
    words = np.array(["low", "high"], dtype=object)
    assert proof.compare(words, words.copy()) is None
    assert proof.compare(words, words[::-1].copy()) == "row 0: fast 'low' vs model 'high'"


def test_batches_cover_every_row_in_runs_of_every_size() -> None:
    runs = proof.batches(300)
    assert runs[0] == slice(0, 300)
    covered = np.concatenate([np.arange(300)[run] for run in runs[1:]])
    assert covered.tolist() == list(range(300))
    sizes = [run.stop - run.start for run in runs[1:]]
    assert sizes[:23] == [*range(1, 23), 1]


# --- what is proven against what ------------------------------------------------------------


def test_a_forest_on_several_threads_is_proven_against_its_sums_in_tree_order(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=20, random_state=0, n_jobs=2)
    forest.fit(diabetes_data.train, diabetes_data.y_train > 140)
    predictor = load_predictor(save_pickled(forest, diabetes_data.train, "predict_proba", tmp_path))
    assert "(n_jobs=2: proven against its sums in tree order)" in predictor.fast_path_note
    assert predictor.estimator.n_jobs == 2  # as it was saved, once the proof is done
    forest.set_params(n_jobs=None)
    actual = predictor.predict(request(diabetes_data.test))
    assert np.array_equal(actual, forest.predict_proba(diabetes_data.test))


def test_a_method_not_reproduced_is_left_to_the_model(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=5, random_state=0)
    forest.fit(diabetes_data.train, diabetes_data.y_train > 140)
    path = save_pickled(forest, diabetes_data.train, "predict_log_proba", tmp_path)
    note = load_predictor(path).fast_path_note
    assert note == "off (RandomForestClassifier: predict_log_proba is not reproduced)"


def categorical_hist() -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=5, categorical_features=[1])


def boosting_from_ridge() -> Any:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import Ridge

    return GradientBoostingRegressor(n_estimators=5, init=Ridge())


def pca_ridge() -> Any:
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    return make_pipeline(PCA(3), Ridge())


@pytest.mark.parametrize(
    ("make", "note"),
    [
        (categorical_hist, "off (HistGradientBoostingRegressor: it has categorical features)"),
        (
            boosting_from_ridge,
            "off (GradientBoostingRegressor: its init estimator Ridge depends on the row)",
        ),
        (pca_ridge, "off (Pipeline: its step PCA is not a scaler reproduced)"),
    ],
    ids=["categorical-features", "init-estimator", "pipeline-step"],
)
def test_models_outside_what_is_reproduced(
    make, note: str, diabetes_data: Diabetes, tmp_path: Path
) -> None:
    features = diabetes_data.train.assign(sex=(diabetes_data.train["sex"] > 0).astype(float))
    estimator = make().fit(features, diabetes_data.y_train)
    predictor = load_predictor(save_pickled(estimator, features, "predict", tmp_path))
    assert predictor.fast is None and predictor.fast_path_note == note


# --- answers the generic path must give ------------------------------------------------------


@pytest.fixture(scope="module")
def scaled_ridge(diabetes_data: Diabetes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), Ridge()).fit(
        diabetes_data.train, diabetes_data.y_train
    )
    return save_pickled(
        pipeline, diabetes_data.train, "predict", tmp_path_factory.mktemp("p") / "m"
    )


def test_a_row_a_pipeline_refuses_between_its_steps_gets_the_models_refusal(
    scaled_ridge: Path, diabetes_data: Diabetes
) -> None:
    """1e308 scaled by StandardScaler (sex: scale 0.5) is infinite: Ridge refuses it."""
    fast, generic = load_predictor(scaled_ridge), load_predictor(scaled_ridge, fast_path=False)
    assert fast.fast is not None
    rows = diabetes_data.test.iloc[:2].copy()
    rows.loc[rows.index[1], "sex"] = 1e308
    messages = []
    for predictor in (fast, generic):
        with pytest.raises(BadRequest) as refused:
            predictor.predict(request(rows))
        messages.append(str(refused.value))
    assert messages[0] == messages[1] and "infinity" in messages[0]


def test_a_product_in_another_memory_layout_is_caught(scaled_ridge: Path) -> None:
    """BLAS adds in another order for a C-ordered matrix: the last bits differ on some
    rows, and the proof's batches find them."""
    predictor = load_predictor(scaled_ridge)
    fast = predictor.fast
    assert isinstance(fast, linear.Linear)

    class COrdered(linear.Linear):
        def predict(self, matrix: np.ndarray) -> np.ndarray:
            X = np.ascontiguousarray(matrix, dtype=np.float64).copy()
            for step in self.steps:
                X = step(X)
            return X @ self.model.coef_ + self.model.intercept_

    wrong = COrdered(fast.model, fast.feature_order, "predict", fast.steps, "C-ordered")
    order = fast.feature_order
    rows = fastpath.probe_rows(wrong, None)
    assert fastpath.verify(fast, lambda m: predictor._reference(m, order), rows) is None
    assert fastpath.verify(wrong, lambda m: predictor._reference(m, order), rows) is not None


def test_float_columns_reach_a_float64_model_as_float32(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    """MLflow hands a 'float' column to scikit-learn as float32: 0.1 arrives as 0.1f."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    features = diabetes_data.train.astype({"bmi": "float32", "bp": "float32"})
    model = HistGradientBoostingRegressor(max_iter=20, random_state=0)
    model.fit(features, diabetes_data.y_train)
    path = save_pickled(model, features, "predict", tmp_path)
    fast, generic = load_predictor(path), load_predictor(path, fast_path=False)
    assert isinstance(fast.fast, fastpath.Float32Columns), fast.fast_path_note
    thresholds = fast.fast.split_points()[list(fast.fast.feature_order).index("bmi")]
    rows = diabetes_data.test.iloc[: len(thresholds)].copy()
    rows["bmi"] = thresholds  # float64 thresholds: float32 rounding moves some across
    assert np.array_equal(fast.predict(request(rows)), generic.predict(request(rows)))


# --- the engines a model's size or a batch's size chooses -----------------------------------


def test_every_engine_of_a_forest_classifier(
    diabetes_data: Diabetes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaves found by the compiled loop, gathered in several chunks or one; or, for a
    forest too large to copy, each tree's own predict: all equal scikit-learn's."""
    from sklearn.ensemble import RandomForestClassifier

    from mlstack.serving.fastpath import trees

    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    forest.fit(diabetes_data.train, diabetes_data.y_train // 80)
    names, matrix = list(diabetes_data.test.columns), diabetes_data.test.to_numpy()
    expected = forest.predict_proba(diabetes_data.test)
    whole = trees.ForestClassifier(forest, names, "predict_proba")
    monkeypatch.setattr(trees, "GATHER_MAX_VALUES", 7 * 10 * forest.n_classes_)
    chunked = trees.ForestClassifier(forest, names, "predict_proba")
    monkeypatch.setattr(trees, "COPY_MAX_NODES", 0)
    looping = trees.ForestClassifier(forest, names, "predict_proba")
    assert looping.leaf_grid is None
    for engine in (whole, chunked, looping):
        assert proof.compare(engine.predict(matrix), expected) is None


@pytest.mark.parametrize("rows", [1, 64, 65, 89])
def test_both_engines_of_hist_gradient_boosting(
    diabetes_data: Diabetes, rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to WALK_MAX_ROWS rows, all trees walked in numpy; more, each tree's predictor."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlstack.serving.fastpath import hist

    model = HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model.fit(diabetes_data.train, diabetes_data.y_train // 80)
    names, matrix = list(diabetes_data.test.columns), diabetes_data.test.to_numpy()[:rows]
    expected = model.predict_proba(diabetes_data.test.iloc[:rows])
    walking = hist.HistGradientBoosting(model, names, "predict_proba")
    monkeypatch.setattr(hist, "WALK_MAX_NODES", 0)
    calling = hist.HistGradientBoosting(model, names, "predict_proba")
    assert walking.walker is not None and calling.walker is None
    for engine in (walking, calling):
        assert proof.compare(engine.predict(matrix), expected) is None
