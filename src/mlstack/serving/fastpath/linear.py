"""Exact fast paths for linear models, alone or after scalers in a Pipeline.

A linear model predicts one matrix product (sklearn/linear_model/_base.py):

    LinearModel._decision_function:          X @ coef_ + intercept_   (coef_.T if 2-D)
    LinearClassifierMixin.decision_function: X @ coef_.T + intercept_, raveled if 1 column

numpy hands the product to BLAS, whose order of additions depends on the matrix's
memory layout: the same product on a C-ordered copy differs in the last bit on many
rows. scikit-learn receives MLflow's DataFrame as a Fortran-ordered array (columns
contiguous), so the product here runs on a Fortran-ordered matrix: the same call on
the same numbers in the same layout. The scalers are element-wise (no order to keep)
and run in place as their transform does. The start-up proof compares batches of
many sizes, so a layout that differs cannot pass unseen.

A pipeline checks its input again before its last step, so a row whose scaled values
are not finite is left to the generic path (scikit-learn refuses it there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlstack.serving.fastpath.base import FastModel, Unsupported, class_name

# Their predict is LinearModel._decision_function on dense input.
REGRESSORS = (
    "LinearRegression",
    "Ridge",
    "RidgeCV",
    "Lasso",
    "LassoCV",
    "ElasticNet",
    "ElasticNetCV",
    "Lars",
    "LassoLars",
    "HuberRegressor",
)
# Their predict is LinearClassifierMixin.predict (decision_function, then the class).
CLASSIFIERS = ("LogisticRegression", "LogisticRegressionCV", "SGDClassifier", "Perceptron")
# LogisticRegression.predict_proba.
PROBABILISTIC = ("LogisticRegression", "LogisticRegressionCV")

Step = Callable[[np.ndarray], np.ndarray]


def build(estimator: Any, order: Sequence[str], method: str) -> FastModel | None:
    """The fast path for a linear model or a Pipeline of scalers and one, else None."""
    name = class_name(estimator)
    if name == "Pipeline":
        *transforms, (_, last) = [step for step in estimator.steps if _active(step[1])]
        if class_name(last) not in REGRESSORS + CLASSIFIERS:
            return None
        steps = [scaler_step(transform) for _, transform in transforms]
        names = [type(t).__name__ for _, t in transforms] + [type(last).__name__]
        return Linear(last, order, method, steps, f"Pipeline({', '.join(names)})")
    if name in REGRESSORS + CLASSIFIERS:
        return Linear(estimator, order, method, [], name)
    return None


def _active(step: Any) -> bool:
    """Pipeline._iter skips steps set to None or 'passthrough'."""
    return step is not None and not (isinstance(step, str) and step == "passthrough")


def scaler_step(transform: Any) -> Step:
    """The scaler's transform on a float64 array (in place, as scikit-learn's)."""
    name = class_name(transform)
    if name == "StandardScaler":
        return _standard(transform)
    if name == "MinMaxScaler":
        return _min_max(transform)
    if name == "MaxAbsScaler":
        return _max_abs(transform)
    if name == "RobustScaler":
        return _robust(transform)
    raise Unsupported(f"its step {type(transform).__name__} is not a scaler reproduced")


def _standard(scaler: Any) -> Step:
    """StandardScaler.transform: X -= mean_; X /= scale_."""

    def step(X: np.ndarray) -> np.ndarray:
        if scaler.with_mean:
            X -= scaler.mean_.astype(X.dtype)
        if scaler.with_std:
            X /= scaler.scale_.astype(X.dtype)
        return X

    return step


def _min_max(scaler: Any) -> Step:
    """MinMaxScaler.transform: X *= scale_; X += min_; clipped to feature_range if clip."""
    low, high = scaler.feature_range

    def step(X: np.ndarray) -> np.ndarray:
        X *= scaler.scale_
        X += scaler.min_
        if scaler.clip:
            np.clip(X, np.asarray(low, dtype=X.dtype), np.asarray(high, dtype=X.dtype), out=X)
        return X

    return step


def _max_abs(scaler: Any) -> Step:
    """MaxAbsScaler.transform: X /= scale_; clipped to [-1, 1] if clip."""

    def step(X: np.ndarray) -> np.ndarray:
        X /= scaler.scale_
        if getattr(scaler, "clip", False):
            np.clip(X, np.asarray(-1.0, dtype=X.dtype), np.asarray(1.0, dtype=X.dtype), out=X)
        return X

    return step


def _robust(scaler: Any) -> Step:
    """RobustScaler.transform: X -= center_; X /= scale_."""

    def step(X: np.ndarray) -> np.ndarray:
        if scaler.with_centering:
            X -= scaler.center_
        if scaler.with_scaling:
            X /= scaler.scale_
        return X

    return step


class Linear(FastModel):
    """The scalers' transforms, then the linear model's predict or predict_proba."""

    def __init__(
        self, model: Any, order: Sequence[str], method: str, steps: list[Step], description: str
    ) -> None:
        super().__init__(order)
        name = class_name(model)
        self.classifier = name in CLASSIFIERS
        allowed = ("predict", "predict_proba") if name in PROBABILISTIC else ("predict",)
        if method not in allowed:
            raise Unsupported(f"{method} of {name} is not reproduced")
        self.model = model
        self.method = method
        self.steps = steps
        self.description = description + (f", {method}" if method != "predict" else "")

    def predict(self, matrix: np.ndarray) -> np.ndarray | None:
        if self.steps:
            X = np.array(matrix, dtype=np.float64, order="F")  # validate_data's copy
            for step in self.steps:
                X = step(X)
            if not np.isfinite(X).all():
                return None  # the last step's validation refuses it: the generic path says so
        else:
            X = np.asfortranarray(matrix, dtype=np.float64)
        if not self.classifier:  # LinearModel._decision_function
            coef = self.model.coef_
            return (X @ coef if coef.ndim == 1 else X @ coef.T) + self.model.intercept_
        scores = self._decision(X)
        if self.method == "predict_proba":
            return self._probabilities(scores)
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return np.take(self.model.classes_, indices, axis=0)

    def _decision(self, X: np.ndarray) -> np.ndarray:
        """LinearClassifierMixin.decision_function."""
        coef = self.model.coef_
        scores = X @ (coef.T if coef.ndim == 2 else coef) + self.model.intercept_
        return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores

    def _probabilities(self, scores: np.ndarray) -> np.ndarray:
        """LogisticRegression.predict_proba: expit for two classes (_predict_proba_lr),
        softmax over the decision for more."""
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        if len(self.model.classes_) <= 2:
            probability = expit(scores, out=scores)
            return np.stack([1 - probability, probability], axis=1)
        return softmax(scores, copy=False)
