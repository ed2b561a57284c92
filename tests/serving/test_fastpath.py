"""The exact fast path and the generic pyfunc path against scikit-learn's own predict."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pytest
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.neighbors import KNeighborsRegressor
from sklearn.tree import DecisionTreeRegressor

from mlstack.serving import decoder, fastpath
from mlstack.serving.errors import BadRequest
from mlstack.serving.predictor import Predictor, load_predictor

from .fastpath_models import save_pickled
from .models import (
    PIP_REQUIREMENTS,
    TRUSTED_TYPES,
    Diabetes,
    full_split,
    relative_error,
    save_model,
)

TOLERANCE = 1e-9  # the bound on relative error, on every row


def test_reference_payload_as_the_reference_sends_it(
    forest_predictor: Predictor, forest_model, diabetes_data: Diabetes
) -> None:
    """df.iloc[[0]].to_json(orient="split"): rounded to 10 digits, predicted as received."""
    import pandas as pd

    for index in range(len(diabetes_data.test)):
        body = diabetes_data.test.iloc[[index]].to_json(orient="split")
        received = pd.DataFrame(**{k: v for k, v in json.loads(body).items()})
        actual = forest_predictor.predict(decoder.parse_json(body.encode()))
        assert actual.tolist() == forest_model.predict(received).tolist()


def test_forest_fast_path_is_on(forest_predictor: Predictor) -> None:
    assert forest_predictor.fast is not None
    assert forest_predictor.fast_path_note.startswith(
        "on (RandomForestRegressor with 100 trees, exact on"
    )


def test_fast_path_equals_sklearn_on_the_whole_test_set(
    forest_predictor: Predictor, forest_model, diabetes_data: Diabetes
) -> None:
    expected = forest_model.predict(diabetes_data.test)
    parsed = decoder.parse_json(full_split(diabetes_data.test))
    actual = forest_predictor.predict(parsed)
    assert relative_error(actual, expected) <= TOLERANCE
    assert np.array_equal(actual, expected)  # in fact bit for bit: same sums, same order


def test_fast_path_equals_sklearn_row_by_row(
    forest_predictor: Predictor, forest_model, diabetes_data: Diabetes
) -> None:
    expected = forest_model.predict(diabetes_data.test)
    for index in range(len(diabetes_data.test)):
        parsed = decoder.parse_json(full_split(diabetes_data.test.iloc[[index]]))
        assert forest_predictor.predict(parsed).tolist() == [expected[index]]


@pytest.mark.parametrize("rows", [1, 2, 31, 32, 33, 111])
def test_exact_at_every_batch_size(forest_model, diabetes_data: Diabetes, rows: int) -> None:
    names = list(diabetes_data.test.columns)
    matrix = diabetes_data.test.to_numpy()[:rows]
    expected = forest_model.predict(diabetes_data.test.iloc[:rows])
    assert np.array_equal(fastpath.build(forest_model, names, "predict").predict(matrix), expected)


def test_generic_path_equals_sklearn_on_the_whole_test_set(
    forest_model_dir: Path, forest_model, diabetes_data: Diabetes
) -> None:
    generic = load_predictor(forest_model_dir, fast_path=False)
    assert generic.fast is None
    assert generic.fast_path_note == "off (INFERENCE_FAST_PATH=false)"
    expected = forest_model.predict(diabetes_data.test)
    actual = generic.predict(decoder.parse_json(full_split(diabetes_data.test)))
    assert relative_error(actual, expected) <= TOLERANCE


def test_csv_goes_the_fast_path_exactly(
    forest_predictor: Predictor, forest_model, diabetes_data: Diabetes
) -> None:
    body = diabetes_data.test.to_csv(index=False, header=False).encode()
    parsed = decoder.parse_csv(body, forest_predictor.column_names)
    expected = forest_model.predict(diabetes_data.test)
    assert np.array_equal(forest_predictor.predict(parsed), expected)


def test_columns_in_another_order(
    forest_predictor: Predictor, forest_model, diabetes_data: Diabetes
) -> None:
    shuffled = diabetes_data.test[list(reversed(diabetes_data.test.columns))]
    actual = forest_predictor.predict(decoder.parse_json(full_split(shuffled)))
    assert np.array_equal(actual, forest_model.predict(diabetes_data.test))


def test_missing_values_go_to_scikit_learn(
    forest_predictor: Predictor, forest_model, diabetes_data
) -> None:
    """A null is NaN; scikit-learn (>= 1.4 forests take NaN) decides, not the fast path."""
    frame = diabetes_data.test.iloc[:3].copy()
    frame.loc[frame.index[1], "bmi"] = np.nan
    records = [{k: (None if v != v else v) for k, v in r.items()} for r in frame.to_dict("records")]
    parsed = decoder.parse_json(json.dumps({"dataframe_records": records}).encode())
    assert np.array_equal(forest_predictor.predict(parsed), forest_model.predict(frame))


def test_infinite_values_are_refused_by_scikit_learn(
    forest_predictor: Predictor, diabetes_data
) -> None:
    row = diabetes_data.test.iloc[0].tolist()
    row[0] = float("inf")
    parsed = decoder.parse_json(
        json.dumps({"columns": list(diabetes_data.test.columns), "data": [row]}).encode()
    )
    with pytest.raises(BadRequest, match="infinity"):
        forest_predictor.predict(parsed)


@pytest.mark.parametrize(
    "estimator",
    [
        ExtraTreesRegressor(n_estimators=20, random_state=0),
        DecisionTreeRegressor(random_state=0),
    ],
    ids=["extra-trees", "decision-tree"],
)
def test_other_tree_regressors(estimator, diabetes_data: Diabetes, tmp_path: Path) -> None:
    estimator.fit(diabetes_data.train, diabetes_data.y_train)
    predictor = load_predictor(save_model(estimator, diabetes_data, tmp_path / "m"))
    assert predictor.fast is not None
    actual = predictor.predict(decoder.parse_json(full_split(diabetes_data.test)))
    assert np.array_equal(actual, estimator.predict(diabetes_data.test))


def test_a_model_without_a_fast_path_takes_the_generic_path(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    estimator = KNeighborsRegressor().fit(diabetes_data.train, diabetes_data.y_train)
    predictor = load_predictor(save_pickled(estimator, diabetes_data.train, "predict", tmp_path))
    assert predictor.fast is None
    assert predictor.fast_path_note == "off (KNeighborsRegressor: no fast path reproduces it)"
    actual = predictor.predict(decoder.parse_json(full_split(diabetes_data.test)))
    assert np.array_equal(np.asarray(actual), estimator.predict(diabetes_data.test))


def test_model_without_signature_is_served_by_mlflow_parsing(
    forest_model, diabetes_data: Diabetes, tmp_path: Path
) -> None:
    path = tmp_path / "unsigned"
    mlflow.sklearn.save_model(
        forest_model,
        str(path),
        skops_trusted_types=TRUSTED_TYPES,
        pip_requirements=PIP_REQUIREMENTS,
    )
    predictor = load_predictor(path)
    assert predictor.table_schema is None and predictor.fast is None
    body = json.dumps({"dataframe_split": json.loads(full_split(diabetes_data.test))}).encode()
    actual = predictor.predict(decoder.parse_json(body))
    assert np.array_equal(actual, forest_model.predict(diabetes_data.test))


def test_verification_catches_a_fast_path_that_is_not_exact(
    forest_model, diabetes_data: Diabetes
) -> None:
    names = list(diabetes_data.train.columns)
    wrong = fastpath.build(forest_model, list(reversed(names)), "predict")
    rows = fastpath.probe_rows(wrong, diabetes_data.train.to_numpy()[:5])

    def reference(matrix: np.ndarray) -> np.ndarray:
        return forest_model.predict(_frame(matrix[:, ::-1], names))

    right = fastpath.build(forest_model, names, "predict")
    assert fastpath.verify(right, lambda m: forest_model.predict(_frame(m, names)), rows) is None
    why = fastpath.verify(wrong, reference, rows)
    # It names the batch and a row of it where the two differ, with both answers.
    found = re.fullmatch(r"rows (\d+)-(\d+): row (\d+): fast (\S+) vs model (\S+)", why or "")
    assert found, why
    batch = rows[int(found.group(1)) : int(found.group(2)) + 1]
    row = int(found.group(3))
    fast, model = wrong.predict(batch)[row], reference(batch)[row]
    assert fast != model
    assert (float(found.group(4)), float(found.group(5))) == (fast, model)


def _frame(matrix: np.ndarray, names: list[str]):
    import pandas as pd

    return pd.DataFrame(matrix, columns=names)


def test_probe_rows_are_the_example_then_values_on_and_beside_thresholds(
    forest_model, diabetes_data: Diabetes
) -> None:
    fast = fastpath.build(forest_model, list(diabetes_data.train.columns), "predict")
    example = diabetes_data.train.to_numpy()[:5]
    rows = fastpath.probe_rows(fast, example)
    assert np.array_equal(rows[:5], example)
    probes = rows[5:]
    assert probes.shape[0] > 0 and probes.shape[1] == example.shape[1]
    for feature, splits in enumerate(fast.split_points()):
        single = splits.astype(np.float32)  # the type scikit-learn's trees compare in
        near = {
            *splits.tolist(),
            *np.nextafter(single, np.float32(np.inf)).astype(np.float64).tolist(),
            *np.nextafter(single, np.float32(-np.inf)).astype(np.float64).tolist(),
        }
        assert set(probes[:, feature].tolist()) <= near, feature
        assert len(set(probes[:, feature].tolist()) & set(splits.tolist())) > 0, feature


def test_feature_order() -> None:
    class Fitted:
        feature_names_in_ = np.array(["b", "a"], dtype=object)

    class Unnamed:
        n_features_in_ = 2

    assert fastpath.feature_order(Fitted(), ["a", "b"]) == ["b", "a"]
    assert fastpath.feature_order(Fitted(), ["a", "c"]) is None
    assert fastpath.feature_order(Unnamed(), ["a", "b"]) == ["a", "b"]
    assert fastpath.feature_order(Unnamed(), ["a"]) is None
