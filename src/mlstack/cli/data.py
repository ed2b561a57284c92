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

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlstack.cli.channels import SPEC_FILE, split_names
from mlstack.cli.errors import CliError

if TYPE_CHECKING:
    import pandas as pd

DIABETES_TARGET = "progression"
CHANNEL_FILES = {"train": "train.csv", "test": "test.csv"}


class DataError(CliError):
    """The data cannot be read or written; the message says what to do."""


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
        raise DataError(
            f"could not download the California housing data ({error}): it needs internet "
            "access; use --dataset diabetes offline"
        ) from None
    return bunch.frame, str(bunch.target.name)


def load_csv(path: Path, target: str, features: list[str] | None) -> tuple[pd.DataFrame, str]:
    """A user's CSV: the target column and numeric features (named, or all other numeric ones)."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"{path} does not exist")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not a readable CSV file: {error}") from None
    columns = [str(column) for column in frame.columns]
    if target not in columns:
        raise DataError(f"{path} has no column {target!r}; its columns are: {' '.join(columns)}")
    if not pd.api.types.is_numeric_dtype(frame[target]):
        raise DataError(f"target column {target!r} must be numeric")
    if features:
        missing = [name for name in features if name not in columns]
        if missing:
            raise DataError(f"{path} has no column {' '.join(missing)}")
        not_numeric = [name for name in features if not pd.api.types.is_numeric_dtype(frame[name])]
        if not_numeric:
            raise DataError(f"features must be numeric: {' '.join(not_numeric)}")
    else:
        others = [name for name in columns if name != target]
        features = [name for name in others if pd.api.types.is_numeric_dtype(frame[name])]
        dropped = [name for name in others if name not in features]
        if dropped:
            click.echo(f"leaving out non-numeric columns: {' '.join(dropped)}", err=True)
    if not features:
        raise DataError(f"{path} has no numeric column besides the target {target!r}")
    frame = frame[[*features, target]].dropna(subset=[target])
    if len(frame) < 2:
        raise DataError(f"{path} needs at least 2 rows with a target value")
    return frame, target


def write_channels(
    frame: pd.DataFrame, output: Path, test_size: float, random_state: int
) -> dict[str, tuple[Path, int]]:
    """Split the rows and write one CSV per channel; refuse to mix with other CSV files,
    since the training job reads every CSV file of a channel."""
    from sklearn.model_selection import train_test_split

    for channel, name in CHANNEL_FILES.items():
        directory = output / channel
        strangers = sorted(p.name for p in directory.glob("*.csv") if p.name != name)
        if strangers:
            raise DataError(
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


def prepare(
    output: Path,
    *,
    dataset: str | None = None,
    csv: Path | None = None,
    target: str | None = None,
    features: list[str] | None = None,
    test_size: float = 0.2,
    random_state: int = 42,
) -> dict[str, str]:
    """Write the channels of a built-in dataset (diabetes by default) or of a CSV file into
    output, and their hyperparameters beside them; return those hyperparameters."""
    if csv is not None:
        frame, target = load_csv(csv, target or "", features)
        source = str(csv)
    elif dataset == "california":
        frame, target = load_california()
        source = "California housing"
    else:
        frame, target = load_diabetes()
        source = "diabetes"
    paths = write_channels(frame, output, test_size, random_state)
    (train_path, train_rows), (test_path, test_rows) = paths["train"], paths["test"]
    spec = hyperparameters(frame, target)
    # Beside the channels, so the local loop's jobs get the matching features and target.
    (output / SPEC_FILE).write_text(json.dumps(spec) + "\n")
    click.echo(
        f"{source}: wrote {train_rows} rows to {train_path} and {test_rows} rows to "
        f"{test_path}; hyperparameters (also in {output / SPEC_FILE}):",
        err=True,
    )
    return spec


def split_features(given: tuple[str, ...]) -> list[str] | None:
    """--features as given: repeated, or names separated by spaces or commas."""
    return split_names(" ".join(given)) or None


@click.command("data")
@click.option(
    "--dataset",
    type=click.Choice(["diabetes", "california"]),
    help="a built-in dataset [default diabetes, which needs no internet]",
)
@click.option("--csv", type=click.Path(path_type=Path), help="your own CSV file (needs --target)")
@click.option("--target", help="with --csv: the column to predict")
@click.option(
    "--features",
    multiple=True,
    help="with --csv: feature columns, e.g. 'rooms area' [default every other numeric one]",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="directory for train/train.csv and test/test.csv",
)
@click.option("--test-size", type=float, default=0.2, show_default=True, help="test share")
@click.option("--random-state", type=int, default=42, show_default=True, help="split seed")
def command(
    dataset: str | None,
    csv: Path | None,
    target: str | None,
    features: tuple[str, ...],
    output: Path,
    test_size: float,
    random_state: int,
) -> None:
    """Write train/test CSV channels (OUTPUT/train, OUTPUT/test) and their features/target.

    Prints the `features` and `target` hyperparameters that go with them as one JSON object
    (also written to OUTPUT/hyperparameters.json)."""
    if dataset and csv:
        raise click.UsageError("give --dataset or --csv, not both")
    if csv is None and (target or features):
        raise click.UsageError("--target and --features go with --csv")
    if csv is not None and not target:
        raise click.UsageError("--csv needs --target, the column to predict")
    if not 0 < test_size < 1:
        raise click.UsageError(f"--test-size must be between 0 and 1, got {test_size}")
    spec = prepare(
        output,
        dataset=dataset,
        csv=csv,
        target=target,
        features=split_features(features),
        test_size=test_size,
        random_state=random_state,
    )
    click.echo(json.dumps(spec))
