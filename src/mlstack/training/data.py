"""The built-in job's data: the train and test channels' CSV files, its feature and target
columns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlstack.training.errors import TrainingError

CHANNELS = ("train", "test")


@dataclass(frozen=True)
class Dataset:
    """Numeric features and target of one channel."""

    features: pd.DataFrame
    target: pd.Series


def check_input_mode(channel: str, mode: str) -> None:
    """Refuse Pipe mode: this job reads files (File or FastFile mode)."""
    if str(mode).lower() == "pipe":
        raise TrainingError(
            f"the {channel} channel uses Pipe input mode; this image reads CSV files: "
            "use File or FastFile mode"
        )


def csv_files(directory: Path) -> list[Path]:
    """The channel's CSV files, in a stable order (SageMaker may keep S3 sub-prefixes)."""
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file() and path.suffix.lower() == ".csv" and not path.name.startswith(".")
    )


def read_csv(path: Path, channel: str) -> pd.DataFrame:
    """One CSV file with a header row and at least one data row."""
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise TrainingError(
            f"{path} is empty: the {channel} channel needs CSV files with a header row and data"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingError(f"{path} is not a readable CSV file: {reason}") from None
    if frame.empty:
        raise TrainingError(f"{path} has a header row but no data rows")
    return frame


def read_channel(directory: Path, channel: str, mode: str = "File") -> pd.DataFrame:
    """Every CSV file of a channel (its directory, its TrainingInputMode), concatenated; they
    must share their columns."""
    check_input_mode(channel, mode)
    if not directory.is_dir():
        raise TrainingError(
            f"no {channel} channel: {directory} does not exist; give the job a {channel!r} "
            "input channel of CSV files (`mlstack data` writes them)"
        )
    files = csv_files(directory)
    if not files:
        raise TrainingError(f"the {channel} channel ({directory}) holds no .csv file")
    frames = [read_csv(path, channel) for path in files]
    columns = list(frames[0].columns)
    for path, frame in zip(files[1:], frames[1:], strict=True):
        if list(frame.columns) != columns:
            raise TrainingError(
                f"{path} has other columns than {files[0]}: every CSV file of the {channel} "
                "channel needs the same header"
            )
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def feature_columns(frame: pd.DataFrame, features: tuple[str, ...], target: str) -> list[str]:
    """The features asked for, or every column but the target when none were named."""
    return list(features) if features else [str(c) for c in frame.columns if c != target]


def select(frame: pd.DataFrame, features: list[str], target: str, channel: str) -> Dataset:
    """Check that the columns exist and are numeric; features become float64."""
    columns = [str(column) for column in frame.columns]
    if target not in columns:
        raise TrainingError(
            f"target column {target!r} is not in the {channel} data; its columns are: "
            f"{' '.join(columns)}"
        )
    if not features:
        raise TrainingError(f"the {channel} data has no column besides the target {target!r}")
    missing = [name for name in features if name not in columns]
    if missing:
        raise TrainingError(
            f"unknown feature{'s' if len(missing) > 1 else ''} {' '.join(missing)}: "
            f"not in the {channel} data, whose columns are: {' '.join(columns)}"
        )
    not_numeric = [
        name for name in [*features, target] if not pd.api.types.is_numeric_dtype(frame[name])
    ]
    if not_numeric:
        column = not_numeric[0]
        numbers = pd.to_numeric(frame[column], errors="coerce")
        example = frame[column][numbers.isna() & frame[column].notna()].iloc[0]
        raise TrainingError(
            f"column{'s' if len(not_numeric) > 1 else ''} {' '.join(not_numeric)} of the "
            f"{channel} data must be numeric; {column!r} holds {example!r}"
        )
    target_values = frame[target].astype("float64")
    empty = int(target_values.isna().sum())
    if empty:
        raise TrainingError(
            f"target column {target!r} of the {channel} data has {empty} empty values"
        )
    # Float64 features make an MLflow signature that also accepts integers at serving time.
    return Dataset(features=frame[features].astype("float64"), target=target_values)
