"""The data set the product trains on, for every suite: `make data`'s diabetes channels
(`mlstack data`, src/mlstack/cli/data.py), read the way the training job reads them
(mlstack.training.data).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlstack.cli import data as prepare_data
from mlstack.training import data
from mlstack.training.paths import OptML

TARGET = prepare_data.DIABETES_TARGET


def write_channels(output: Path) -> Path:
    """Write the diabetes channels (and hyperparameters.json) exactly as `make data` does."""
    prepare_data.prepare(output, dataset="diabetes")
    return output


def job_frames(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write the channels into an /opt/ml tree under root; (train, test) read back as the
    training job reads its channels."""
    opt_ml = OptML(root)
    write_channels(opt_ml.channel("train").parent)
    train, test = (data.read_channel(opt_ml.channel(name), name) for name in data.CHANNELS)
    return train, test


@dataclass(frozen=True)
class Channels:
    """The train and test channels' features and target, as the training job selects them."""

    train: pd.DataFrame
    test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    @property
    def features(self) -> list[str]:
        return [str(column) for column in self.train.columns]


def diabetes_channels(root: Path) -> Channels:
    """The channels written under root and read back, features and target picked as the
    training job picks them (every column but the target, as floats)."""
    train_frame, test_frame = job_frames(root)
    features = data.feature_columns(train_frame, (), TARGET)
    train = data.select(train_frame, features, TARGET, "train")
    test = data.select(test_frame, features, TARGET, "test")
    return Channels(train.features, test.features, train.target, test.target)
