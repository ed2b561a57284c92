"""Saving the trained forest as an MLflow model into /opt/ml/model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from mlstack.training.errors import TrainingError

# mlflow 3.17 serialises scikit-learn models with skops, which refuses to load types it is not
# told to trust; a RandomForest's trees are sklearn.tree._tree.Tree. Recording the trust in the
# model lets a plain mlflow.pyfunc.load_model (and the inference image) load it.
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
INPUT_EXAMPLE_ROWS = 5
# What the model needs to load, pinned to what this image runs. MLflow would infer the same
# list by loading the model in a subprocess, which costs seconds of every job.
REQUIRED_DISTRIBUTIONS = {
    "mlflow": "mlflow-skinny",
    "pandas": "pandas",
    "scikit-learn": "scikit-learn",
    "skops": "skops",
}


def pinned_requirements() -> list[str]:
    """The model's pip requirements, at the versions installed here."""
    from importlib.metadata import version

    return [f"{name}=={version(dist)}" for name, dist in REQUIRED_DISTRIBUTIONS.items()]


def model_args(model: RandomForestRegressor, features: pd.DataFrame) -> dict[str, Any]:
    """Signature, input example and skops trust, shared by the saved and the logged model."""
    from mlflow.models import infer_signature

    example = features.head(INPUT_EXAMPLE_ROWS)
    return {
        "signature": infer_signature(example, model.predict(example)),
        "input_example": example,
        "skops_trusted_types": SKOPS_TRUSTED_TYPES,
    }


def check_model_dir(path: Path) -> None:
    """/opt/ml/model must be empty (SageMaker hands it over empty); checked before training."""
    if path.exists() and not path.is_dir():
        raise TrainingError(f"{path} is not a directory: the model is saved there")
    if path.is_dir() and any(path.iterdir()):
        raise TrainingError(f"{path} is not empty: give the job an empty model directory")


def save(model: RandomForestRegressor, path: Path, args: dict[str, Any]) -> None:
    """Write the MLflow model into path, the directory SageMaker tars into model.tar.gz,
    so the inference image can serve the job's model.tar.gz as it is."""
    import mlflow.sklearn

    mlflow.sklearn.save_model(model, str(path), pip_requirements=pinned_requirements(), **args)
