"""The models the inference benchmark serves, all on the diabetes channels `make data` writes.

Each is an MLflow model folder (what the servers that read MLflow models load) plus the same
fitted estimator as `model.joblib` (what MLServer's scikit-learn runtime loads):

- forest: the training image's RandomForestRegressor (mlstack.training: its fit and save);
- classifier / classifier-proba: a 100-tree RandomForestClassifier on the target cut into
  three classes, its pyfunc answering labels (predict) or probabilities (predict_proba);
- gradient-boosting: GradientBoostingRegressor with examples/gradient_boosting's settings;
- hist-gradient-boosting: HistGradientBoostingRegressor, 100 iterations, saved with cloudpickle;
- pipeline: Pipeline(StandardScaler, Ridge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstack.cli import data as prepare_data
from mlstack.training import data as training_data
from mlstack.training import model as training_model
from mlstack.training import train
from mlstack.training.hyperparameters import Hyperparameters
from mlstack.training.paths import OptML

TARGET = prepare_data.DIABETES_TARGET
RANDOM_STATE = 0
TREES = "sklearn.tree._tree.Tree"


@dataclass(frozen=True)
class Data:
    """The train and test features and target, as the training job reads them."""

    train: pd.DataFrame
    test: pd.DataFrame
    y_train: pd.Series


@dataclass(frozen=True)
class BenchModel:
    """One served model: its MLflow folder, its joblib file, and how its pyfunc predicts."""

    name: str
    mlflow_dir: Path
    joblib_file: Path
    estimator: Any
    method: str  # "predict" or "predict_proba": what the pyfunc model answers

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """The estimator's own answer, as the pyfunc model gives it."""
        return np.asarray(getattr(self.estimator, self.method)(rows))


def diabetes(root: Path) -> Data:
    """`make data`'s diabetes channels written under root and read as the training job does."""
    opt_ml = OptML(root)
    prepare_data.prepare(root / "input/data", dataset="diabetes")
    frames = {
        name: training_data.read_channel(opt_ml.channel(name), name) for name in ("train", "test")
    }
    features = training_data.feature_columns(frames["train"], (), TARGET)
    chosen = {
        name: training_data.select(frame, features, TARGET, name) for name, frame in frames.items()
    }
    return Data(chosen["train"].features, chosen["test"].features, chosen["train"].target)


def _forest(data: Data, path: Path) -> tuple[Any, str]:
    hyperparameters = Hyperparameters(target=TARGET, random_state=RANDOM_STATE)
    estimator = train.fit(hyperparameters, training_data.Dataset(data.train, data.y_train))
    training_model.save(estimator, path, training_model.model_args(estimator, data.train))
    return estimator, "predict"


def _classes(target: pd.Series) -> np.ndarray:
    """The target cut at its terciles: classes 0, 1 and 2."""
    return np.digitize(target, np.quantile(target, [1 / 3, 2 / 3]))


def _classifier(method: str) -> Callable[[Data, Path], tuple[Any, str]]:
    def make(data: Data, path: Path) -> tuple[Any, str]:
        from sklearn.ensemble import RandomForestClassifier

        estimator = RandomForestClassifier(n_estimators=100, random_state=RANDOM_STATE)
        estimator.fit(data.train, _classes(data.y_train))
        _save(estimator, data, path, method, skops_trusted_types=[TREES])
        return estimator, method

    return make


def _gradient_boosting(data: Data, path: Path) -> tuple[Any, str]:
    from sklearn.ensemble import GradientBoostingRegressor

    # examples/gradient_boosting/train.py's defaults; its MLflow 2.x client pickles the model.
    estimator = GradientBoostingRegressor(
        n_estimators=100, min_samples_leaf=3, learning_rate=0.1, max_depth=3, random_state=0
    ).fit(data.train.astype("float64"), data.y_train)
    _save(estimator, data, path, "predict", serialization_format="cloudpickle")
    return estimator, "predict"


def _hist_gradient_boosting(data: Data, path: Path) -> tuple[Any, str]:
    from sklearn.ensemble import HistGradientBoostingRegressor

    estimator = HistGradientBoostingRegressor(max_iter=100, random_state=RANDOM_STATE)
    estimator.fit(data.train, data.y_train)
    _save(estimator, data, path, "predict", serialization_format="cloudpickle")
    return estimator, "predict"


def _pipeline(data: Data, path: Path) -> tuple[Any, str]:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    estimator = make_pipeline(StandardScaler(), Ridge()).fit(data.train, data.y_train)
    _save(estimator, data, path, "predict")
    return estimator, "predict"


def _save(estimator: Any, data: Data, path: Path, method: str, **options: Any) -> None:
    """Saved as mlflow.sklearn saves it, with a signature and the training image's pins."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = data.train.head(training_model.INPUT_EXAMPLE_ROWS)
    requirements = training_model.pinned_requirements()
    if options.get("serialization_format") == "cloudpickle":
        import cloudpickle

        requirements.append(f"cloudpickle=={cloudpickle.__version__}")
    mlflow.sklearn.save_model(
        estimator,
        str(path),
        signature=infer_signature(example, getattr(estimator, method)(example)),
        input_example=example,
        pip_requirements=requirements,
        pyfunc_predict_fn=method,
        **options,
    )


MAKERS: dict[str, Callable[[Data, Path], tuple[Any, str]]] = {
    "forest": _forest,
    "classifier": _classifier("predict"),
    "classifier-proba": _classifier("predict_proba"),
    "gradient-boosting": _gradient_boosting,
    "hist-gradient-boosting": _hist_gradient_boosting,
    "pipeline": _pipeline,
}


def make(name: str, data: Data, root: Path) -> BenchModel:
    """Fit and save one model under root/name; readable by the containers' non-root users."""
    import joblib

    folder = root / name
    folder.mkdir(parents=True)
    estimator, method = MAKERS[name](data, folder / "mlflow")
    joblib.dump(estimator, folder / "model.joblib")
    for item in [folder, *folder.rglob("*")]:
        item.chmod(0o755 if item.is_dir() else 0o644)
    return BenchModel(name, folder / "mlflow", folder / "model.joblib", estimator, method)
