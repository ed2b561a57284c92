"""Models of every family the fast paths reproduce, fitted on the training image's
diabetes data and saved as MLflow models (cloudpickle: skops would need each family's
types trusted one by one), for the fast-path suites."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from .models import PIP_REQUIREMENTS, Diabetes, make_readable


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """OpenMP and BLAS on one thread for a test module that imports this fixture:
    HistGradientBoosting fits and predicts with a parallel region per tree, which costs
    milliseconds each on a busy 2-core machine (no answer depends on the thread count:
    each row is computed alone)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@dataclass(frozen=True)
class Family:
    """A model to serve: how to fit it, on which target, and the method its pyfunc calls."""

    id: str
    make: Callable[[], Any]
    target: str  # "value", "binary", "classes" or "words"
    method: str = "predict"


def target(data: Diabetes, kind: str) -> np.ndarray:
    """The training target for a family: the progression itself, or classes cut from it."""
    values = data.y_train.to_numpy()
    if kind == "value":
        return values
    if kind == "binary":
        return values > 140
    classes = np.digitize(values, [100, 150, 200])
    if kind == "words":
        return np.array(["low", "mid", "high", "top"], dtype=object)[classes]
    return classes


def families() -> list[Family]:
    """One of each estimator and output the fast paths reproduce."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
    )
    from sklearn.linear_model import Lasso, LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    def forest() -> Any:
        return RandomForestClassifier(n_estimators=30, random_state=0)

    def hist_classifier() -> Any:
        return HistGradientBoostingClassifier(max_iter=50, random_state=0)

    return [
        Family("forest-classifier", forest, "binary"),
        Family("forest-classifier-words", forest, "words"),
        Family("forest-classifier-proba", forest, "classes", "predict_proba"),
        Family(
            "extra-trees-classifier",
            lambda: ExtraTreesClassifier(n_estimators=30, random_state=0),
            "classes",
        ),
        Family(
            "decision-tree-classifier-proba",
            lambda: DecisionTreeClassifier(random_state=0),
            "classes",
            "predict_proba",
        ),
        Family(
            "gradient-boosting-example",  # as examples/gradient_boosting trains it
            lambda: GradientBoostingRegressor(
                n_estimators=100, min_samples_leaf=3, learning_rate=0.1, max_depth=3, random_state=0
            ),
            "value",
        ),
        Family(
            "gradient-boosting-classifier-proba",
            lambda: GradientBoostingClassifier(n_estimators=50, random_state=0),
            "binary",
            "predict_proba",
        ),
        Family(
            "gradient-boosting-classifier-classes",
            lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
            "classes",
        ),
        Family(
            "hist-gradient-boosting",
            lambda: HistGradientBoostingRegressor(max_iter=50, random_state=0),
            "value",
        ),
        Family("hist-gradient-boosting-classifier", hist_classifier, "binary"),
        Family(
            "hist-gradient-boosting-classifier-proba", hist_classifier, "classes", "predict_proba"
        ),
        Family("linear-regression", LinearRegression, "value"),
        Family("scaler-ridge", lambda: make_pipeline(StandardScaler(), Ridge()), "value"),
        Family(
            "scalers-lasso",
            lambda: make_pipeline(MinMaxScaler(clip=True), RobustScaler(), Lasso(alpha=0.01)),
            "value",
        ),
        Family(
            "logistic-regression-proba",
            lambda: LogisticRegression(max_iter=1000),
            "binary",
            "predict_proba",
        ),
        Family(
            "scaler-logistic-regression",
            lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            "classes",
        ),
    ]


def fit(family: Family, data: Diabetes) -> Any:
    """The family's estimator fitted on the training channel."""
    return family.make().fit(data.train, target(data, family.target))


def save_pickled(estimator: Any, features: pd.DataFrame, method: str, path: Path) -> Path:
    """Save with a signature, an input example and the pyfunc method, readable by the image."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = features.head(5)
    mlflow.sklearn.save_model(
        estimator,
        str(path),
        signature=infer_signature(example, getattr(estimator, method)(example)),
        input_example=example,
        serialization_format="cloudpickle",
        pyfunc_predict_fn=method,
        pip_requirements=PIP_REQUIREMENTS,
    )
    make_readable(path)
    return path
