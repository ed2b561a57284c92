"""The built-in job's data: reading the channels and checking the columns, without Docker."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from mlstack.training import data
from mlstack.training.errors import TrainingError
from mlstack.training.paths import OptML

from .helpers import FEATURES, TARGET


def test_reads_every_csv_of_a_channel_in_order(
    make_opt_ml: Callable[..., OptML], diabetes: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    train, _ = diabetes
    opt_ml = make_opt_ml(train=train.iloc[:100])
    nested = opt_ml.channel("train") / "part"
    nested.mkdir()
    train.iloc[100:].to_csv(nested / "b.csv", index=False)
    (opt_ml.channel("train") / ".hidden.csv").write_text("junk")
    (opt_ml.channel("train") / "notes.txt").write_text("not data")
    frame = data.read_channel(opt_ml.channel("train"), "train")
    # Every .csv file below the channel, by path: part/b.csv sorts before train.csv.
    expected = pd.concat([train.iloc[100:], train.iloc[:100]], ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (None, "no train channel: .* does not exist"),
        ("", "is empty: the train channel needs CSV files"),
        ("age,sex,progression\n", "has a header row but no data rows"),
    ],
)
def test_bad_channels(make_opt_ml: Callable[..., OptML], train: str | None, message: str) -> None:
    opt_ml = make_opt_ml(train=train)
    with pytest.raises(TrainingError, match=message):
        data.read_channel(opt_ml.channel("train"), "train")


def test_channel_without_csv_files(make_opt_ml: Callable[..., OptML]) -> None:
    opt_ml = make_opt_ml()
    (opt_ml.channel("train") / "train.csv").rename(opt_ml.channel("train") / "train.parquet")
    with pytest.raises(TrainingError, match=r"holds no \.csv file"):
        data.read_channel(opt_ml.channel("train"), "train")


def test_files_of_a_channel_must_share_columns(make_opt_ml: Callable[..., OptML]) -> None:
    opt_ml = make_opt_ml()
    (opt_ml.channel("train") / "z.csv").write_text("a,b\n1,2\n")
    with pytest.raises(TrainingError, match="has other columns than"):
        data.read_channel(opt_ml.channel("train"), "train")


@pytest.mark.parametrize("mode", ["Pipe", "pipe"])
def test_pipe_mode_is_refused(make_opt_ml: Callable[..., OptML], mode: str) -> None:
    opt_ml = make_opt_ml()
    with pytest.raises(TrainingError, match=r"Pipe input mode.*use File or FastFile"):
        data.read_channel(opt_ml.channel("train"), "train", mode)
    assert len(data.read_channel(opt_ml.channel("train"), "train", "FastFile")) > 0


def test_select_makes_float_features(diabetes: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = diabetes
    frame = train.astype({"age": "int64"})
    selected = data.select(frame, FEATURES.split(), TARGET, "train")
    assert list(selected.features.columns) == FEATURES.split()
    assert {str(dtype) for dtype in selected.features.dtypes} == {"float64"}
    assert len(selected.target) == len(train)


def test_default_features_are_all_but_the_target(
    diabetes: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, _ = diabetes
    assert data.feature_columns(train, (), TARGET) == FEATURES.split()
    assert data.feature_columns(train, ("bmi", "bp"), TARGET) == ["bmi", "bp"]


FRAME = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "y": [1.0, None]})


@pytest.mark.parametrize(
    ("features", "target", "message"),
    [
        (["a"], "price", "target column 'price' is not in the train data; its columns are: a b y"),
        (["a", "nope"], "y", "unknown feature nope: not in the train data"),
        (["a", "b"], "y", "column b of the train data must be numeric; 'b' holds 'x'"),
        (["a"], "y", "target column 'y' of the train data has 1 empty values"),
        ([], "y", "no column besides the target"),
    ],
)
def test_select_errors(features: list[str], target: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        data.select(FRAME, features, target, "train")
