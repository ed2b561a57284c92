"""Every family's fast path against the model's own pyfunc predictions, bit for bit.

Per family (fastpath_models.families): the fast path is chosen at start-up, answers
generated requests (hypothesis, fixed seed) and the proof's threshold probes exactly
as the generic path (the pyfunc model itself) answers them, and a fast path whose
proof fails is not used, and says so in the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack.serving import decoder, fastpath
from mlstack.serving.predictor import Predictor, load_predictor

from .fastpath_models import (
    Family,
    families,
    fit,
    one_thread,  # noqa: F401 (autouse: one OpenMP/BLAS thread)
    save_pickled,
)
from .models import Diabetes

# The same examples every run, no time limit per example, nothing kept between runs.
GENERATED = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FAMILIES = families()


@dataclass
class Served:
    """One family's model, loaded twice: fast path on (counting its answers) and off."""

    family: Family
    estimator: Any
    fast: Predictor
    generic: Predictor
    model_dir: Path
    fast_answers: int = 0

    def answers(self, rows: list[list[float]]) -> tuple[Any, Any]:
        """Both predictors' answers to one JSON request of these rows."""
        body = json.dumps({"columns": self.fast.column_names, "data": rows}).encode()
        return (
            self.fast.predict(decoder.parse_json(body)),
            self.generic.predict(decoder.parse_json(body)),
        )


@pytest.fixture(scope="module", params=FAMILIES, ids=[family.id for family in FAMILIES])
def served(
    request: pytest.FixtureRequest,
    diabetes_data: Diabetes,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    family: Family = request.param
    estimator = fit(family, diabetes_data)
    path = save_pickled(
        estimator, diabetes_data.train, family.method, tmp_path_factory.mktemp(family.id) / "m"
    )
    fast, generic = load_predictor(path), load_predictor(path, fast_path=False)
    result = Served(family, estimator, fast, generic, path)
    assert fast.fast is not None, fast.fast_path_note
    counted = fast.fast.predict

    def counting(matrix: np.ndarray) -> Any:
        answer = counted(matrix)
        result.fast_answers += answer is not None
        return answer

    fast.fast.predict = counting  # type: ignore[method-assign]
    yield result


def assert_same(fast: Any, generic: Any) -> None:
    """The same numpy array, bit for bit: dtype, shape and every value's bits."""
    assert isinstance(fast, np.ndarray) and isinstance(generic, np.ndarray)
    assert (fast.dtype, fast.shape) == (generic.dtype, generic.shape)
    if generic.dtype.kind in "fc":
        assert np.ascontiguousarray(fast).tobytes() == np.ascontiguousarray(generic).tobytes()
    else:
        assert fast.tolist() == generic.tolist()


def test_the_fast_path_is_chosen_and_proven(served: Served) -> None:
    note = served.fast.fast_path_note
    assert note.startswith("on (") and "exact on" in note, note
    if served.family.method != "predict":
        assert served.family.method in note


# Values as clients send them: the data's scale, wider, JSON integers, signed zeros, and
# the test set's rows.
VALUES = st.one_of(
    st.floats(min_value=0, max_value=300),
    st.floats(min_value=-1e6, max_value=1e6),
    st.integers(min_value=-3, max_value=300),
    st.sampled_from([0.0, -0.0, 5e-324, 0.1]),
)


def test_generated_rows_bit_for_bit(served: Served, diabetes_data: Diabetes) -> None:
    before = served.fast_answers
    row = st.one_of(
        st.lists(VALUES, min_size=10, max_size=10),
        st.sampled_from(diabetes_data.test.to_numpy().tolist()),
    )

    @GENERATED
    @given(rows=st.lists(row, min_size=1, max_size=8))
    def check(rows: list[list[float]]) -> None:
        fast, generic = served.answers(rows)
        assert_same(fast, generic)

    check()
    assert served.fast_answers > before  # the fast path answered, not only the generic one


def test_threshold_probes_bit_for_bit(served: Served) -> None:
    """The proof's kind of rows, drawn with another seed, one request per run of rows."""
    fast = served.fast.fast
    assert fast is not None
    rows = fastpath.probe_rows(fast, None, seed=1)
    points = fast.split_points()
    if points is not None:  # the probes sit on split thresholds
        assert any(np.isin(rows[:, f], points[f]).any() for f in range(len(points)))
    for start in range(0, len(rows), 37):
        fast_answer, generic = served.answers(rows[start : start + 37].tolist())
        assert_same(fast_answer, generic)


def test_the_example_is_answered_as_the_model_answers_it(served: Served) -> None:
    import mlflow.pyfunc

    example = served.fast.model.metadata.load_input_example(str(served.model_dir))
    expected = mlflow.pyfunc.load_model(str(served.model_dir)).predict(example)
    fast, _ = served.answers(example.to_numpy().tolist())
    assert_same(fast, expected)


class Sabotaged(fastpath.FastModel):
    """A fast path whose answers differ from the model's in one value of the first row."""

    def __init__(self, inner: fastpath.FastModel) -> None:
        super().__init__(inner.feature_order)
        self.inner = inner
        self.description = inner.description

    def predict(self, matrix: np.ndarray) -> np.ndarray | None:
        answer = self.inner.predict(matrix)
        if answer is None:
            return None
        answer = answer.copy()
        if answer.dtype.kind == "f":
            answer.flat[0] = np.nextafter(answer.flat[0], np.inf)
        else:  # labels: one the model never answers
            answer = answer.astype(object)
            answer[0] = "sabotaged"
        return answer


@pytest.mark.parametrize(
    "family",
    [
        f
        for f in FAMILIES
        if f.id
        in {
            "forest-classifier",
            "gradient-boosting-example",
            "hist-gradient-boosting-classifier-proba",
            "scaler-ridge",
        }
    ],
    ids=lambda family: family.id,
)
def test_a_proof_that_fails_falls_back_and_says_so(
    family: Family,
    diabetes_data: Diabetes,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = save_pickled(
        fit(family, diabetes_data), diabetes_data.train, family.method, tmp_path / "m"
    )
    build = fastpath.build
    monkeypatch.setattr(fastpath, "build", lambda *args: Sabotaged(build(*args)))
    with caplog.at_level(logging.WARNING, logger="mlstack.serving.predictor"):
        predictor = load_predictor(path)
    assert predictor.fast is None
    assert predictor.fast_path_note.startswith("off (not exact: rows "), predictor.fast_path_note
    assert any("fast path not exact" in record.getMessage() for record in caplog.records)
    body = json.dumps(
        {"columns": list(diabetes_data.test.columns), "data": diabetes_data.test.values.tolist()}
    ).encode()
    generic = load_predictor(path, fast_path=False)
    assert_same(
        predictor.predict(decoder.parse_json(body)), generic.predict(decoder.parse_json(body))
    )
