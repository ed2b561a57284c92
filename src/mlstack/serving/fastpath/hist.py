"""Exact fast path for HistGradientBoostingRegressor and HistGradientBoostingClassifier.

scikit-learn computes (ensemble/_hist_gradient_boosting/gradient_boosting.py,
`_raw_predict` and `_predict_iterations`), on float64 features:

    raw = zeros((rows, K), order="F") + _baseline_prediction
    for each iteration, each k:  raw[:, k] += predictors[iteration][k].predict(X)

each predictor walking its nodes: left when x <= num_threshold. Per call it validates
the input and opens an OpenMP region per tree (~5 us each, more when the pool is
contended), which dominates one row. Here, up to WALK_MAX_ROWS rows walk all trees at
once in numpy, a level per step, and add the leaves' values in the same order (cumsum:
one addition after the other); larger batches call each predictor's own predict, as
scikit-learn does, on one thread (the rows do not depend on each other).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlstack.serving.fastpath.base import FastModel, Unsupported, class_name

NAMES = ("HistGradientBoostingRegressor", "HistGradientBoostingClassifier")
WALK_MAX_ROWS = 64
# Beyond this many nodes in all trees, the flat copy is not worth its memory.
WALK_MAX_NODES = 2_000_000


def build(estimator: Any, order: Sequence[str], method: str) -> FastModel | None:
    """The fast path for a HistGradientBoosting model, None if the estimator is not one."""
    if class_name(estimator) not in NAMES:
        return None
    return HistGradientBoosting(estimator, order, method)


class FlatTrees:
    """Every tree's nodes in flat arrays, leaves pointing at themselves."""

    def __init__(self, nodes: Sequence[np.ndarray]) -> None:
        starts = np.cumsum([0] + [tree.size for tree in nodes])[:-1]
        feature = np.concatenate([tree["feature_idx"] for tree in nodes]).astype(np.intp)
        threshold = np.concatenate([tree["num_threshold"] for tree in nodes]).astype(np.float64)
        pairs = list(zip(nodes, starts, strict=True))
        left = np.concatenate([tree["left"].astype(np.intp) + start for tree, start in pairs])
        right = np.concatenate([tree["right"].astype(np.intp) + start for tree, start in pairs])
        leaf = np.concatenate([tree["is_leaf"] for tree in nodes]).astype(bool)
        index = np.arange(feature.size, dtype=np.intp)
        # A leaf's step goes "left" (x <= +inf) to itself, so extra steps change nothing.
        feature[leaf], threshold[leaf] = 0, np.inf
        left, right = np.where(leaf, index, left), np.where(leaf, index, right)
        # children[2 * node] is the left child, children[2 * node + 1] the right one.
        self.children = np.empty(2 * feature.size, dtype=np.intp)
        self.children[0::2], self.children[1::2] = left, right
        self.feature = feature
        self.threshold = threshold
        self.value = np.concatenate([tree["value"] for tree in nodes]).astype(np.float64)
        self.roots = starts.astype(np.intp)
        self.depth = max(int(tree["depth"].max()) for tree in nodes)

    def leaf_values(self, features: np.ndarray) -> np.ndarray:
        """(rows, trees): each row's leaf value in each tree (float64 features, finite)."""
        rows, trees = features.shape[0], self.roots.size
        flat = np.ascontiguousarray(features).ravel()
        row_start = np.repeat(np.arange(rows, dtype=np.intp) * features.shape[1], trees)
        node = np.tile(self.roots, rows)
        for _ in range(self.depth):
            goes_right = flat[row_start + self.feature[node]] > self.threshold[node]
            node = self.children[2 * node + goes_right]
        return self.value[node].reshape(rows, trees)


class HistGradientBoosting(FastModel):
    """predict (regression: the loss's inverse link of the raw sum; classification: the
    class of the largest raw value) and predict_proba (the loss's own), as scikit-learn."""

    def __init__(self, estimator: Any, order: Sequence[str], method: str) -> None:
        super().__init__(order)
        self.classifier = class_name(estimator) == "HistGradientBoostingClassifier"
        allowed = ("predict", "predict_proba") if self.classifier else ("predict",)
        if method not in allowed:
            raise Unsupported(f"{method} is not reproduced")
        if getattr(estimator, "_preprocessor", None) is not None or any(
            np.any(p.nodes["is_categorical"]) for it in estimator._predictors for p in it
        ):
            raise Unsupported("it has categorical features")
        self.method = method
        self.iterations = [list(iteration) for iteration in estimator._predictors]
        self.columns = len(self.iterations[0])
        self.baseline = np.asarray(estimator._baseline_prediction)
        self.loss = estimator._loss
        self.known_categories = estimator._bin_mapper.make_known_categories_bitsets()
        if self.classifier:
            self.classes = estimator.classes_
        nodes = [predictor.nodes for iteration in self.iterations for predictor in iteration]
        flat = sum(tree.size for tree in nodes) <= WALK_MAX_NODES
        self.walker = FlatTrees(nodes) if flat else None
        self.description = f"{type(estimator).__name__} with {len(self.iterations)} iterations"
        if method != "predict":
            self.description += f", {method}"

    def split_points(self) -> list[np.ndarray]:
        nodes = [predictor.nodes for iteration in self.iterations for predictor in iteration]
        inner = [tree[tree["is_leaf"] == 0] for tree in nodes]
        return [
            np.concatenate([tree["num_threshold"][tree["feature_idx"] == f] for tree in inner])
            for f in range(len(self.feature_order))
        ]

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """`_raw_predict`: (rows, columns) raw predictions, Fortran-ordered as there."""
        rows = matrix.shape[0]
        if self.walker is not None and rows <= WALK_MAX_ROWS:
            values = self.walker.leaf_values(matrix).reshape(rows, -1, self.columns)
            start = np.broadcast_to(self.baseline.reshape(1, 1, -1), (rows, 1, self.columns))
            sums = np.cumsum(np.concatenate([start, values], axis=1), axis=1)[:, -1, :]
            return np.asfortranarray(sums)
        raw = np.zeros((rows, self.columns), dtype=self.baseline.dtype, order="F")
        raw += self.baseline
        known, index_map = self.known_categories
        for iteration in self.iterations:
            for k, predictor in enumerate(iteration):
                raw[:, k] += predictor.predict(matrix, known, index_map, 1)
        return raw

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        raw = self.raw(matrix)
        if not self.classifier:
            return self.loss.link.inverse(raw.ravel())
        if self.method == "predict_proba":
            return self.loss.predict_proba(raw)
        binary = raw.shape[1] == 1
        encoded = (raw.ravel() > 0).astype(int) if binary else np.argmax(raw, axis=1)
        return self.classes[encoded]
