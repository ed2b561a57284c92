"""MLflow models for the inference suites, made the way the training image makes them."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import train_test_split

# mlflow 3.17 saves with skops; the forest's Tree type must be trusted to load it.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
# Given, not inferred: inference loads the model in a subprocess (seconds per model)
# and would record whatever the test process has imported, pytest included.
PIP_REQUIREMENTS = ["mlflow-skinny==3.17.2", "scikit-learn==1.9.1", "skops==0.16.0"]


@dataclass(frozen=True)
class Diabetes:
    """scikit-learn's diabetes data, split once for every suite."""

    train: pd.DataFrame
    test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series


def diabetes() -> Diabetes:
    """The diabetes features as a DataFrame (age, sex, bmi, ...) and a fixed split."""
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.25, random_state=42
    )
    return Diabetes(x_train, x_test, y_train, y_test)


def forest(data: Diabetes, n_estimators: int = 100) -> RandomForestRegressor:
    """The reference's model: a RandomForestRegressor on the diabetes data."""
    return RandomForestRegressor(n_estimators=n_estimators, random_state=0).fit(
        data.train, data.y_train
    )


def save_model(model, data: Diabetes, path: Path) -> Path:
    """Save as the training image does: mlflow.sklearn, skops, signature, input example."""
    signature = infer_signature(data.train, model.predict(data.train))
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=signature,
        input_example=data.train.iloc[:5],
        skops_trusted_types=TRUSTED_TYPES,
        pip_requirements=PIP_REQUIREMENTS,
    )
    make_readable(path)
    return path


def make_readable(path: Path) -> None:
    """Let the image's non-root user read a model folder made by root."""
    path.chmod(0o755)
    for item in path.rglob("*"):
        item.chmod(0o755 if item.is_dir() else 0o644)


def tar_model(model_dir: Path, tarball: Path) -> Path:
    """model.tar.gz holding the model folder's files at its top, as SageMaker uploads it."""
    with tarfile.open(tarball, "w:gz") as archive:
        for item in sorted(model_dir.iterdir()):
            archive.add(item, arcname=item.name)
    tarball.chmod(0o644)
    return tarball


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest |actual - expected| / |expected| (0 where both are equal)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    difference = np.abs(actual - expected)
    scale = np.where(expected == 0, 1.0, np.abs(expected))
    return float(np.max(difference / scale))
