"""Write train/test CSV channels for the training image, and print their hyperparameters.

  mlstack data --dataset diabetes --output data/diabetes     (offline)
  mlstack data --dataset california --output data/california (downloads)
  mlstack data --csv my.csv --target price --output data/mine

It writes OUTPUT/train/train.csv and OUTPUT/test/test.csv, the two channels the training
job reads (/opt/ml/input/data/train and .../test), then prints the `features` and `target`
hyperparameters that go with them as one JSON object on stdout (the summary goes to stderr)
and writes the same object to OUTPUT/hyperparameters.json.

The Boston housing data of the reference workflow left scikit-learn in 1.2; these replace it:
- diabetes: scikit-learn's bundled diabetes data, 442 rows, unscaled; features are
  scikit-learn's names (age sex bmi bp s1 s2 s3 s4 s5 s6); the target, a measure of disease
  progression one year after baseline, is named `progression` (scikit-learn only says `target`).
- california: California housing, 20,640 rows, fetched from the internet on first use and
  cached by scikit-learn; scikit-learn's names (MedInc ... Longitude, target MedHouseVal).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

DIABETES_TARGET = "progression"
CHANNEL_FILES = {"train": "train.csv", "test": "test.csv"}


class PrepareError(Exception):
    """A problem the user can fix; the message says what and how."""


def load_diabetes() -> tuple[pd.DataFrame, str]:
    """scikit-learn's bundled diabetes data, unscaled, so rows read like real patients."""
    from sklearn.datasets import load_diabetes as sklearn_diabetes

    bunch = sklearn_diabetes(as_frame=True, scaled=False)
    frame = bunch.frame.rename(columns={"target": DIABETES_TARGET})
    return frame, DIABETES_TARGET


def load_california() -> tuple[pd.DataFrame, str]:
    """California housing; scikit-learn downloads it once into its data home."""
    from sklearn.datasets import fetch_california_housing

    try:
        bunch = fetch_california_housing(as_frame=True)
    except OSError as error:  # URLError and socket errors are OSErrors
        raise PrepareError(
            f"could not download the California housing data ({error}): it needs internet "
            "access; use --dataset diabetes offline"
        ) from None
    return bunch.frame, str(bunch.target.name)


def load_csv(path: Path, target: str, features: list[str] | None) -> tuple[pd.DataFrame, str]:
    """A user's CSV: the target column and numeric features (named, or all other numeric ones)."""
    if not path.is_file():
        raise PrepareError(f"{path} does not exist")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise PrepareError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise PrepareError(f"{path} is not a readable CSV file: {error}") from None
    columns = [str(column) for column in frame.columns]
    if target not in columns:
        raise PrepareError(f"{path} has no column {target!r}; its columns are: {' '.join(columns)}")
    if not pd.api.types.is_numeric_dtype(frame[target]):
        raise PrepareError(f"target column {target!r} must be numeric")
    if features:
        missing = [name for name in features if name not in columns]
        if missing:
            raise PrepareError(f"{path} has no column {' '.join(missing)}")
        not_numeric = [name for name in features if not pd.api.types.is_numeric_dtype(frame[name])]
        if not_numeric:
            raise PrepareError(f"features must be numeric: {' '.join(not_numeric)}")
    else:
        others = [name for name in columns if name != target]
        features = [name for name in others if pd.api.types.is_numeric_dtype(frame[name])]
        dropped = [name for name in others if name not in features]
        if dropped:
            print(f"leaving out non-numeric columns: {' '.join(dropped)}", file=sys.stderr)
    if not features:
        raise PrepareError(f"{path} has no numeric column besides the target {target!r}")
    frame = frame[[*features, target]].dropna(subset=[target])
    if len(frame) < 2:
        raise PrepareError(f"{path} needs at least 2 rows with a target value")
    return frame, target


def write_channels(
    frame: pd.DataFrame, output: Path, test_size: float, random_state: int
) -> dict[str, tuple[Path, int]]:
    """Split the rows and write one CSV per channel; refuse to mix with other CSV files,
    since the training job reads every CSV file of a channel."""
    for channel, name in CHANNEL_FILES.items():
        directory = output / channel
        strangers = sorted(p.name for p in directory.glob("*.csv") if p.name != name)
        if strangers:
            raise PrepareError(
                f"{directory} holds other CSV files ({' '.join(strangers)}); the training job "
                "reads every CSV file of a channel: choose an empty --output directory"
            )
    train, test = train_test_split(frame, test_size=test_size, random_state=random_state)
    paths = {}
    for channel, part in (("train", train), ("test", test)):
        path = output / channel / CHANNEL_FILES[channel]
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_csv(path, index=False)
        paths[channel] = (path, len(part))
    return paths


def hyperparameters(frame: pd.DataFrame, target: str) -> dict[str, str]:
    """The `features` and `target` hyperparameters that match the written channels."""
    return {"features": " ".join(str(c) for c in frame.columns if c != target), "target": target}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mlstack data", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset",
        choices=("diabetes", "california"),
        help="a built-in dataset (default: diabetes, which needs no internet)",
    )
    source.add_argument("--csv", type=Path, help="your own CSV file (needs --target)")
    parser.add_argument("--target", help="with --csv: the column to predict")
    parser.add_argument(
        "--features", nargs="+", help="with --csv: feature columns (default: every other numeric)"
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="directory for train/train.csv, test/test.csv"
    )
    parser.add_argument("--test-size", type=float, default=0.2, help="test share (default 0.2)")
    parser.add_argument("--random-state", type=int, default=42, help="split seed (default 42)")
    args = parser.parse_args(argv)
    if args.csv is None and (args.target or args.features):
        parser.error("--target and --features go with --csv")
    if args.csv is not None and not args.target:
        parser.error("--csv needs --target, the column to predict")
    if not 0 < args.test_size < 1:
        parser.error("--test-size must be between 0 and 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """`mlstack data ARGS`: write the channels; 0, or 1 after one line on stderr."""
    args = parse_args(argv)
    try:
        if args.csv is not None:
            frame, target = load_csv(args.csv, args.target, args.features)
            source = str(args.csv)
        elif args.dataset == "california":
            frame, target = load_california()
            source = "California housing"
        else:
            frame, target = load_diabetes()
            source = "diabetes"
        paths = write_channels(frame, args.output, args.test_size, args.random_state)
    except PrepareError as error:
        print(f"prepare_data: {error}", file=sys.stderr)
        return 1
    (train_path, train_rows), (test_path, test_rows) = paths["train"], paths["test"]
    spec = json.dumps(hyperparameters(frame, target))
    # Beside the channels, so the local loop's jobs get the matching features and target.
    (args.output / "hyperparameters.json").write_text(spec + "\n")
    print(
        f"{source}: wrote {train_rows} rows to {train_path} and {test_rows} rows to "
        f"{test_path}; hyperparameters (also in {args.output / 'hyperparameters.json'}):",
        file=sys.stderr,
    )
    print(spec)
    return 0
