"""An exact fast path for scikit-learn tree-ensemble regressors.

`RandomForestRegressor.predict` on one row spends ~16 ms on per-call and per-tree
overhead (validation, joblib dispatch, one Python call per estimator with checks);
the trees themselves take well under a millisecond. scikit-learn computes

    y = (sum over estimators, in order, of estimator.tree_.predict(X_float32)[:, 0]) / n

(ForestRegressor.predict with _accumulate_prediction). This module computes the
same sums on the same float32 features, in the same order, without the overhead;
small batches walk all trees at once. It is used only after it has reproduced the
pyfunc model's own predictions on the model's input example and on rows that sit
on the trees' split thresholds; otherwise the server falls back to the generic
pyfunc path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

RELATIVE_TOLERANCE = 1e-9
# Batches up to this many rows walk all trees at once; larger ones loop over the trees.
WALK_MAX_ROWS = 32
# Beyond this many nodes in all trees, the flat copy is not worth its memory.
WALK_MAX_NODES = 2_000_000
AVERAGING_ENSEMBLES = ("RandomForestRegressor", "ExtraTreesRegressor")
SINGLE_TREES = ("DecisionTreeRegressor", "ExtraTreeRegressor")
# Integers above 2**53 are not exact in float64, the type MLflow hands scikit-learn.
EXACT_INTEGER_LIMIT = 2.0**53


class TreeEnsemblePredictor:
    """Predicts like the estimator, from its fitted trees, on float64 matrices.

    Up to WALK_MAX_ROWS rows, all trees are walked at once in numpy, one level per
    step (a one-row request then costs ~70 us instead of ~400 us for 100 calls to
    tree_.predict); larger batches call each tree's own predict, where the per-call
    cost is spread over many rows. Both add the trees' values in estimator order.
    """

    def __init__(self, estimator: Any, feature_order: Sequence[str]) -> None:
        name = type(estimator).__name__
        if name in AVERAGING_ENSEMBLES:
            self.trees = [member.tree_ for member in estimator.estimators_]
            self.average = True
        else:
            self.trees = [estimator.tree_]
            self.average = False
        self.feature_order = list(feature_order)
        nodes = sum(tree.node_count for tree in self.trees)
        self.walker = FlatForest(self.trees) if nodes <= WALK_MAX_NODES else None
        self.description = f"{name} with {len(self.trees)} trees"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Predictions for a float64 matrix whose columns follow feature_order."""
        features = np.ascontiguousarray(matrix, dtype=np.float32)
        if self.walker is not None and features.shape[0] <= WALK_MAX_ROWS:
            total = self.walker.leaf_sum(features)
        else:
            total = np.zeros(features.shape[0], dtype=np.float64)
            for tree in self.trees:
                total += tree.predict(features)[:, 0]
        if self.average:
            total /= len(self.trees)
        return total


class FlatForest:
    """Every tree's nodes in flat arrays, leaves pointing at themselves."""

    def __init__(self, trees: Sequence[Any]) -> None:
        offsets = np.cumsum([0] + [tree.node_count for tree in trees])[:-1]
        feature = np.concatenate([tree.feature for tree in trees]).astype(np.intp)
        threshold = np.concatenate([tree.threshold for tree in trees]).astype(np.float64)
        left = np.concatenate([t.children_left + o for t, o in zip(trees, offsets, strict=True)])
        right = np.concatenate([t.children_right + o for t, o in zip(trees, offsets, strict=True)])
        leaf = np.concatenate([tree.children_left == -1 for tree in trees])
        index = np.arange(feature.size, dtype=np.intp)
        # A leaf's step goes "left" (x <= +inf) to itself, so extra steps change nothing.
        feature[leaf], threshold[leaf] = 0, np.inf
        left, right = np.where(leaf, index, left), np.where(leaf, index, right)
        # children[2 * node] is the left child, children[2 * node + 1] the right one.
        self.children = np.empty(2 * feature.size, dtype=np.intp)
        self.children[0::2], self.children[1::2] = left, right
        self.feature = feature
        self.threshold = threshold
        self.value = np.concatenate([tree.value[:, 0, 0] for tree in trees]).astype(np.float64)
        self.roots = offsets.astype(np.intp)
        self.depth = max(tree.max_depth for tree in trees)

    def leaf_sum(self, features: np.ndarray) -> np.ndarray:
        """Sum over trees, in order, of each row's leaf value (float32 features)."""
        rows, trees = features.shape[0], self.roots.size
        # scikit-learn compares the float32 feature, widened, with the float64 threshold.
        flat = features.astype(np.float64).ravel()
        row_start = np.repeat(np.arange(rows, dtype=np.intp) * features.shape[1], trees)
        node = np.tile(self.roots, rows)
        for _ in range(self.depth):
            goes_right = flat[row_start + self.feature[node]] > self.threshold[node]
            node = self.children[2 * node + goes_right]
        values = self.value[node].reshape(rows, trees)
        # cumsum adds left to right, as scikit-learn's += over the estimators does.
        return np.cumsum(values, axis=1)[:, -1]


# scikit-learn's trees compare float32 features (sklearn.tree._tree.DTYPE); these
# estimators cast their input to float32 before anything else.
FLOAT32_MODULES = ("sklearn.tree.", "sklearn.ensemble._forest", "sklearn.ensemble._gb")


def computes_in_float32(estimator: Any) -> bool:
    """Whether the estimator turns its input into float32 (a value beyond it is infinite)."""
    return type(estimator).__module__.startswith(FLOAT32_MODULES)


def supported_estimator(estimator: Any) -> bool:
    """Exactly a single-output scikit-learn tree regressor this module reproduces."""
    module = type(estimator).__module__
    name = type(estimator).__name__
    if not module.startswith("sklearn.") or name not in AVERAGING_ENSEMBLES + SINGLE_TREES:
        return False
    return getattr(estimator, "n_outputs_", None) == 1


def feature_order(estimator: Any, signature_names: Sequence[str]) -> list[str] | None:
    """The column order the estimator was fitted with, or None if it cannot be known."""
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None:
        fitted = [str(name) for name in fitted]
        return fitted if sorted(fitted) == sorted(signature_names) else None
    if getattr(estimator, "n_features_in_", None) == len(signature_names):
        return list(signature_names)
    return None


def probe_rows(
    predictor: TreeEnsemblePredictor,
    example: np.ndarray | None,
    integer_columns: Sequence[bool] | None = None,
) -> np.ndarray:
    """Rows to compare on: the input example plus values on and beside split thresholds.

    Integer columns get the whole numbers on either side of each threshold.
    """
    width = len(predictor.feature_order)
    integer_columns = integer_columns or [False] * width
    rng = np.random.default_rng(0)
    candidates = []
    for feature in range(width):
        thresholds = np.concatenate(
            [tree.threshold[tree.feature == feature] for tree in predictor.trees]
        )
        if thresholds.size == 0:
            thresholds = np.zeros(1)
        thresholds = rng.choice(thresholds, size=min(64, thresholds.size), replace=False)
        if integer_columns[feature]:
            candidates.append(np.concatenate([np.floor(thresholds), np.ceil(thresholds)]))
            continue
        as_float32 = thresholds.astype(np.float32)
        values = np.concatenate(
            [
                thresholds,
                np.nextafter(as_float32, np.float32(np.inf)).astype(np.float64),
                np.nextafter(as_float32, np.float32(-np.inf)).astype(np.float64),
            ]
        )
        candidates.append(values)
    rows = np.column_stack([rng.choice(values, size=256) for values in candidates])
    if example is not None and example.size:
        rows = np.vstack([example.reshape(-1, width), rows])
    return rows


def verify(
    predictor: TreeEnsemblePredictor, reference_predict: Any, rows: np.ndarray
) -> str | None:
    """None if the fast path matches reference_predict on rows, else why not."""
    try:
        expected = np.asarray(reference_predict(rows), dtype=np.float64).reshape(-1)
    except Exception as error:  # the generic path itself failed: leave it to serve
        return f"the generic path failed on probe rows: {error}"
    whole = predictor.predict(rows)
    chunked = np.concatenate(
        [predictor.predict(rows[i : i + WALK_MAX_ROWS]) for i in range(0, len(rows), WALK_MAX_ROWS)]
    )
    for actual in (whole, chunked):  # the per-tree loop, then the walk over all trees
        if expected.shape != actual.shape:
            return f"shapes differ: {actual.shape} vs {expected.shape}"
        close = np.abs(actual - expected) <= RELATIVE_TOLERANCE * np.abs(expected)
        if not bool(np.all(close | (actual == expected))):
            worst = int(np.argmax(np.abs(actual - expected)))
            return f"row {worst}: fast {float(actual[worst])!r} vs model {float(expected[worst])!r}"
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
