"""Exact fast paths for scikit-learn's tree models: forests, single trees, GradientBoosting*.

`RandomForestRegressor.predict` on one row spends ~16 ms on validation, joblib
dispatch and one Python call per tree; the trees themselves take microseconds.
Here the trees are walked by scikit-learn's own compiled loop, the one
`GradientBoosting*.predict` runs (sklearn/ensemble/_gradient_boosting.pyx):

    predict_stages(estimators, X, scale, out):
        for each stage i, each column k:  out[:, k] += scale * value[leaf of estimators[i, k]]

on float32 features, compared with the trees' float64 thresholds as scikit-learn
compares them. So:
- a forest regressor is that sum with scale 1, trees in estimator order, divided
  by their number, as `ForestRegressor.predict` adds and divides;
- a forest classifier adds each tree's probability vector (`ForestClassifier.
  predict_proba`): the loop runs over copies of the trees whose leaves hold their own
  node number, which gives every tree's leaf at once, and numpy adds the leaves'
  vectors in estimator order (cumsum: one addition after the other, no pairwise sums);
- gradient boosting is the loop itself, from the init estimator's raw prediction;
- a single tree is its own `tree_.predict`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from mlstack.serving.fastpath.base import FastModel, Unsupported, class_name

FOREST_REGRESSORS = ("RandomForestRegressor", "ExtraTreesRegressor")
FOREST_CLASSIFIERS = ("RandomForestClassifier", "ExtraTreesClassifier")
SINGLE_REGRESSORS = ("DecisionTreeRegressor", "ExtraTreeRegressor")
SINGLE_CLASSIFIERS = ("DecisionTreeClassifier", "ExtraTreeClassifier")
BOOSTING = ("GradientBoostingRegressor", "GradientBoostingClassifier")
FORESTS = FOREST_REGRESSORS + FOREST_CLASSIFIERS
TREE_MODELS = FORESTS + SINGLE_REGRESSORS + SINGLE_CLASSIFIERS + BOOSTING
# Beyond this many nodes in all trees, a classifier's copies of its trees are not worth
# their memory: it adds each tree's own predict instead (slower, as exact).
COPY_MAX_NODES = 2_000_000
# Leaf vectors are gathered and added for this many rows x trees x classes at a time.
GATHER_MAX_VALUES = 4_000_000


def build(estimator: Any, order: Sequence[str], method: str) -> FastModel | None:
    """The fast path for a tree model, None if the estimator is not one."""
    name = class_name(estimator)
    if name not in TREE_MODELS:
        return None
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise Unsupported("it predicts several outputs")
    if name in FOREST_REGRESSORS:
        if method != "predict":
            raise Unsupported(f"{method} is not reproduced")
        return ForestRegressor(estimator, order)
    if name in FOREST_CLASSIFIERS:
        return ForestClassifier(estimator, order, method)
    if name in SINGLE_REGRESSORS + SINGLE_CLASSIFIERS:
        return SingleTree(estimator, order, method)
    if name in BOOSTING:
        return GradientBoosting(estimator, order, method)
    return None


def float32_features(matrix: np.ndarray) -> np.ndarray:
    """What the trees compare: the input as C-ordered float32 (tree._tree.DTYPE)."""
    return np.ascontiguousarray(matrix, dtype=np.float32)


def stage_grid(members: Sequence[Sequence[Any]]) -> np.ndarray:
    """predict_stages' estimators argument: an object array [stage, column] of objects
    with a tree_ attribute."""
    grid = np.empty((len(members), len(members[0])), dtype=object)
    for i, row in enumerate(members):
        for k, member in enumerate(row):
            grid[i, k] = member
    return grid


class _TreeHolder:
    """What predict_stages reads from an estimator: its tree_."""

    __slots__ = ("tree_",)

    def __init__(self, tree: Any) -> None:
        self.tree_ = tree


def tree_with_values(tree: Any, values: np.ndarray) -> Any:
    """A copy of a fitted Tree, same nodes, with one float64 value per node."""
    from sklearn.tree._tree import Tree

    state = dict(tree.__getstate__())
    state["values"] = np.ascontiguousarray(values, dtype=np.float64).reshape(-1, 1, 1)
    copy = Tree(tree.n_features, np.ones(1, dtype=np.intp), 1)
    copy.__setstate__(state)
    return copy


def thresholds_by_feature(trees: Sequence[Any], width: int) -> list[np.ndarray]:
    """Every split threshold of the trees, per feature (leaves have feature < 0)."""
    return [
        np.concatenate([tree.threshold[tree.feature == feature] for tree in trees])
        for feature in range(width)
    ]


class _TreeModel(FastModel):
    """Shared by the tree fast paths: float32 comparisons and the trees' thresholds."""

    compares_in = np.float32

    def __init__(self, estimator: Any, order: Sequence[str], trees: Sequence[Any]) -> None:
        super().__init__(order)
        self.estimator = estimator
        self.trees = list(trees)
        self.description = f"{type(estimator).__name__} with {len(self.trees)} trees"

    def split_points(self) -> list[np.ndarray]:
        return thresholds_by_feature(self.trees, len(self.feature_order))


class _Forest(_TreeModel):
    """A forest: with n_jobs other than 1, scikit-learn adds the trees' answers in the
    order its threads finish, so its own answers differ by the last bits from call to
    call; the fast path is proven against its sums in estimator order (n_jobs=None)."""

    def __init__(self, estimator: Any, order: Sequence[str]) -> None:
        super().__init__(estimator, order, [member.tree_ for member in estimator.estimators_])
        self.members = list(estimator.estimators_)
        jobs = getattr(estimator, "n_jobs", None)
        if jobs not in (None, 1):
            self.description += f" (n_jobs={jobs}: proven against its sums in tree order)"

    @contextmanager
    def reference_context(self) -> Iterator[None]:
        jobs = getattr(self.estimator, "n_jobs", None)
        if jobs in (None, 1):
            yield
            return
        self.estimator.n_jobs = None
        try:
            yield
        finally:
            self.estimator.n_jobs = jobs


class ForestRegressor(_Forest):
    """ForestRegressor.predict: the trees' values added in estimator order, divided."""

    def __init__(self, estimator: Any, order: Sequence[str]) -> None:
        from sklearn.ensemble._gradient_boosting import predict_stages

        super().__init__(estimator, order)
        self.predict_stages = predict_stages
        self.grid = stage_grid([[member] for member in self.members])

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        total = np.zeros((matrix.shape[0], 1), dtype=np.float64)
        self.predict_stages(self.grid, float32_features(matrix), 1.0, total)
        mean = total.reshape(-1)
        mean /= len(self.members)
        return mean


class ForestClassifier(_Forest):
    """ForestClassifier.predict_proba (the trees' class fractions added in estimator
    order, divided) and predict (the class of the largest mean, first on ties)."""

    def __init__(self, estimator: Any, order: Sequence[str], method: str) -> None:
        from sklearn.ensemble._gradient_boosting import predict_stages

        super().__init__(estimator, order)
        if method not in ("predict", "predict_proba"):
            raise Unsupported(f"{method} is not reproduced")
        self.method = method
        self.classes = estimator.classes_
        self.n_classes = int(estimator.n_classes_)
        if any(int(member.n_classes_) != self.n_classes for member in self.members):
            raise Unsupported("its trees know different classes")
        self.predict_stages = predict_stages
        # Each node's class fractions, as DecisionTreeClassifier.predict_proba returns them.
        self.values = np.concatenate([t.value[:, 0, : self.n_classes] for t in self.trees])
        self.leaf_grid: np.ndarray | None = None
        if self.values.shape[0] <= COPY_MAX_NODES:
            starts = np.cumsum([0] + [tree.node_count for tree in self.trees])[:-1]
            numbered = [
                _TreeHolder(tree_with_values(tree, np.arange(tree.node_count) + start))
                for tree, start in zip(self.trees, starts, strict=True)
            ]
            self.leaf_grid = stage_grid([numbered])
        if method == "predict_proba":
            self.description += ", predict_proba"

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """The forest's mean class fractions for float32 features."""
        rows = features.shape[0]
        proba = np.zeros((rows, self.n_classes), dtype=np.float64)
        if self.leaf_grid is None:
            for tree in self.trees:
                proba += tree.predict(features)[:, : self.n_classes]
        else:
            numbers = np.zeros((rows, len(self.trees)), dtype=np.float64)
            self.predict_stages(self.leaf_grid, features, 1.0, numbers)
            leaves = numbers.astype(np.intp)
            step = max(1, GATHER_MAX_VALUES // (len(self.trees) * self.n_classes))
            for start in range(0, rows, step):
                gathered = self.values[leaves[start : start + step]]  # rows, trees, classes
                proba[start : start + step] = np.cumsum(gathered, axis=1)[:, -1, :]
        proba /= len(self.trees)
        return proba

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        proba = self.probabilities(float32_features(matrix))
        if self.method == "predict_proba":
            return proba
        return self.classes.take(np.argmax(proba, axis=1), axis=0)


class SingleTree(_TreeModel):
    """DecisionTree*/ExtraTree*: the tree's own predict, without the checks around it."""

    def __init__(self, estimator: Any, order: Sequence[str], method: str) -> None:
        super().__init__(estimator, order, [estimator.tree_])
        self.classifier = class_name(estimator).endswith("Classifier")
        allowed = ("predict", "predict_proba") if self.classifier else ("predict",)
        if method not in allowed:
            raise Unsupported(f"{method} is not reproduced")
        self.method = method
        self.tree = estimator.tree_
        if self.classifier:
            self.classes = estimator.classes_
            self.n_classes = int(estimator.n_classes_)
        self.description = type(estimator).__name__
        if method != "predict":
            self.description += f", {method}"

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        proba = self.tree.predict(float32_features(matrix))
        if not self.classifier:
            return proba[:, 0]
        if self.method == "predict_proba":
            return proba[:, : self.n_classes]
        return self.classes.take(np.argmax(proba, axis=1), axis=0)


# DummyClassifier strategies whose predict_proba does not depend on the row (stratified draws).
CONSTANT_DUMMY_CLASSIFIERS = ("prior", "most_frequent", "uniform", "constant")


class GradientBoosting(_TreeModel):
    """GradientBoosting*: `_raw_predict` is the init estimator's raw prediction plus
    predict_stages over the stages; the init estimators scikit-learn chooses (Dummy*)
    give every row the same raw start, computed once here."""

    def __init__(self, estimator: Any, order: Sequence[str], method: str) -> None:
        from sklearn.ensemble._gradient_boosting import predict_stages

        stages = estimator.estimators_
        super().__init__(estimator, order, [member.tree_ for member in stages.ravel()])
        self.classifier = class_name(estimator) == "GradientBoostingClassifier"
        allowed = ("predict", "predict_proba") if self.classifier else ("predict",)
        if method not in allowed:
            raise Unsupported(f"{method} is not reproduced")
        self.method = method
        self.predict_stages = predict_stages
        self.stages = stages
        self.scale = float(estimator.learning_rate)
        self.start = self._raw_start(estimator, order)
        if self.classifier:
            self.classes = estimator.classes_
            self.loss = estimator._loss
        self.description = f"{type(estimator).__name__} with {stages.shape[0]} stages"
        if method != "predict":
            self.description += f", {method}"

    @staticmethod
    def _raw_start(estimator: Any, order: Sequence[str]) -> np.ndarray:
        """The init estimator's raw prediction, the same for every row."""
        import warnings

        init = estimator.init_
        strategy = getattr(init, "strategy", None)
        if isinstance(init, str):  # "zero"
            return np.zeros((1, stages_width(estimator)), dtype=np.float64)
        if class_name(init) == "DummyRegressor" or (
            class_name(init) == "DummyClassifier" and strategy in CONSTANT_DUMMY_CLASSIFIERS
        ):
            row = np.zeros((1, len(order)), dtype=np.float32)
            with warnings.catch_warnings():  # an unnamed row: the features' names do not matter
                warnings.simplefilter("ignore", UserWarning)
                start = estimator._raw_predict_init(row)
            return np.ascontiguousarray(start, dtype=np.float64)
        raise Unsupported(f"its init estimator {type(init).__name__} depends on the row")

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """`_raw_predict`: (rows, columns) raw predictions."""
        raw = np.repeat(self.start, matrix.shape[0], axis=0)
        self.predict_stages(self.stages, float32_features(matrix), self.scale, raw)
        return raw

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        raw = self.raw(matrix)
        if not self.classifier:
            return raw.ravel()  # GradientBoostingRegressor.predict
        # GradientBoostingClassifier.decision_function, then predict or predict_proba.
        decision = raw.ravel() if raw.shape[1] == 1 else raw
        if self.method == "predict_proba":
            return self.loss.predict_proba(decision)
        binary = decision.ndim == 1
        encoded = (decision >= 0).astype(int) if binary else np.argmax(decision, axis=1)
        return self.classes[encoded]


def stages_width(estimator: Any) -> int:
    """How many trees each boosting stage has (one per class beyond binary)."""
    return int(estimator.estimators_.shape[1])
