"""What every fast path is, and what the server needs to know before choosing one."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np

# Integers above 2**53 are not exact in float64, the type MLflow hands scikit-learn.
EXACT_INTEGER_LIMIT = 2.0**53
# scikit-learn's trees compare float32 features (sklearn.tree._tree.DTYPE); these
# estimators cast their input to float32 before anything else.
FLOAT32_MODULES = ("sklearn.tree.", "sklearn.ensemble._forest", "sklearn.ensemble._gb")


class Unsupported(Exception):
    """This model has no exact fast path; the message says why, in a few words."""


class FastModel:
    """Predicts as the estimator's own pyfunc method does, from a float64 matrix.

    Subclasses set `description` and implement `predict`; tree models also list their
    split thresholds per feature (`split_points`) and the type features are compared
    in (`compares_in`), so that the start-up proof can probe rows on them.
    """

    description = "a scikit-learn model"
    compares_in: type = np.float64

    def __init__(self, feature_order: Sequence[str]) -> None:
        self.feature_order = list(feature_order)

    def predict(self, matrix: np.ndarray) -> np.ndarray | None:
        """Predictions for a finite float64 matrix whose columns follow feature_order;
        None where the generic path must answer (it would refuse what this computes)."""
        raise NotImplementedError

    def split_points(self) -> list[np.ndarray] | None:
        """Each feature's split thresholds, in feature_order; None for models without."""
        return None

    def reference_context(self) -> AbstractContextManager[Any]:
        """Held while the model's own predictions are computed for the proof."""
        return nullcontext()


def computes_in_float32(estimator: Any) -> bool:
    """Whether the estimator turns its input into float32 (a value beyond it is infinite)."""
    return type(estimator).__module__.startswith(FLOAT32_MODULES)


def feature_order(estimator: Any, signature_names: Sequence[str]) -> list[str] | None:
    """The column order the estimator was fitted with, or None if it cannot be known."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None:
        fitted = [str(name) for name in fitted]
        return fitted if sorted(fitted) == sorted(signature_names) else None
    if getattr(estimator, "n_features_in_", None) == len(signature_names):
        return list(signature_names)
    return None


def raw_model(model: Any) -> Any:
    """The flavour's own model behind a pyfunc model: get_raw_model() in MLflow 3; a model
    image may run an MLflow 2.x without it, where the sklearn wrapper holds the model."""
    if hasattr(model, "get_raw_model"):
        return model.get_raw_model()
    wrapped = getattr(getattr(model, "_model_impl", None), "sklearn_model", None)
    if wrapped is None:
        raise AttributeError(f"{type(model).__name__} exposes no raw model in this MLflow")
    return wrapped


def class_name(estimator: Any) -> str:
    """The estimator's class name if scikit-learn defines it, else ''."""
    return type(estimator).__name__ if type(estimator).__module__.startswith("sklearn.") else ""
