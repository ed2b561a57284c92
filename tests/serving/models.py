"""MLflow models for the inference suites, made by the training package (mlstack.training):
the forest the training image fits, on the data set it trains on (`make data`'s diabetes
channels, target `progression`), saved the way it saves it."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor

from mlstack.training import model, train
from mlstack.training.data import Dataset
from mlstack.training.hyperparameters import Hyperparameters
from support.data import TARGET, diabetes_channels
from support.data import Channels as Diabetes

# What the training image records in every model it saves.
TRUSTED_TYPES = model.SKOPS_TRUSTED_TYPES
PIP_REQUIREMENTS = model.pinned_requirements()
RANDOM_STATE = 0  # a job's random-state hyperparameter: the same forest every session


def diabetes(root: Path) -> Diabetes:
    """The channels the training image trains on, written under root and read as it reads them."""
    return diabetes_channels(root)


def forest(data: Diabetes, n_estimators: int = 100) -> RandomForestRegressor:
    """The training image's forest (mlstack.training.train.fit, the job's defaults)."""
    hyperparameters = Hyperparameters(
        target=TARGET, n_estimators=n_estimators, random_state=RANDOM_STATE
    )
    return train.fit(hyperparameters, Dataset(data.train, data.y_train))


def save_model(estimator, data: Diabetes, path: Path) -> Path:
    """Save as the training image saves into /opt/ml/model (mlstack.training.model.save:
    signature, input example, skops trust, pinned requirements)."""
    model.save(estimator, path, model.model_args(estimator, data.train))
    make_readable(path)
    return path


def save_code_model(code: Path, example: pd.DataFrame, output: list, path: Path) -> Path:
    """A pyfunc model from code (MLflow's "models from code"), with the requirements the
    training image records, for tests that need a model that behaves in special ways."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    mlflow.pyfunc.save_model(
        str(path),
        python_model=str(code),
        signature=infer_signature(example, output),
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


def full_split(frame: pd.DataFrame) -> bytes:
    """The pandas split orientation with every float in full (to_json keeps 10 digits)."""
    return json.dumps(
        {"columns": list(frame.columns), "index": list(frame.index), "data": frame.values.tolist()}
    ).encode()


def tiled_rows(frame: pd.DataFrame, mebibytes: float) -> np.ndarray:
    """The frame's rows repeated until their JSON (split format's `data`) is about this size."""
    once = len(json.dumps(frame.to_numpy().tolist()))
    return np.tile(frame.to_numpy(), (round(mebibytes * 1024 * 1024 / once), 1))


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest |actual - expected| / |expected| (0 where both are equal)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    difference = np.abs(actual - expected)
    scale = np.where(expected == 0, 1.0, np.abs(expected))
    return float(np.max(difference / scale))
