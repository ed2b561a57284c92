"""Fitting the forest (mlstack.training.train)."""

from __future__ import annotations

import pandas as pd

from mlstack.training import train
from mlstack.training.data import Dataset
from mlstack.training.hyperparameters import Hyperparameters

from .helpers import FEATURES, TARGET


def test_the_fitted_forest_predicts_the_same_bits_every_time(
    diabetes: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    # Fitted on every core, it predicts on one: summed over threads, the trees' answers came
    # back in another order from call to call and the last bit moved (the served model too).
    train_frame, test_frame = diabetes
    features = FEATURES.split()
    hyperparameters = Hyperparameters(target=TARGET, random_state=0)
    forest = train.fit(hyperparameters, Dataset(train_frame[features], train_frame[TARGET]))
    rows = test_frame[features].head(3)
    answers = {forest.predict(rows).tobytes() for _ in range(50)}
    assert len(answers) == 1
