"""The data channels `mlstack data` writes: their spec (features, target) and the reference's
request made from their test rows, for the local endpoint and SageMaker's alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mlstack.cli.errors import CliError

SPEC_FILE = "hyperparameters.json"
DEFAULT_TARGET = "progression"
CONTENT_TYPE = "application/json"


class ChannelError(CliError):
    """The data is missing or unusable; the message says how to make it."""


def data_hyperparameters(data_dir: Path) -> dict[str, str]:
    """The features and target that `mlstack data` wrote beside the channels
    (DATA_DIR/hyperparameters.json), or {} when there is no such file."""
    path = data_dir / SPEC_FILE
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except ValueError:
        raise ChannelError(f"{path} is not JSON: run `make data` again") from None
    return {k: str(v) for k, v in values.items() if k in {"features", "target"} and v}


def split_names(raw: str) -> list[str]:
    """Names separated by spaces or commas (FEATURES, subnet lists)."""
    return [name for name in re.split(r"[\s,]+", raw) if name]


def target_and_features(
    data_dir: Path, target: str = "", features: str = ""
) -> tuple[str, list[str] | None]:
    """TARGET and FEATURES as given, defaulting to DATA_DIR/hyperparameters.json, then
    `progression` and every other column (None)."""
    written = data_hyperparameters(data_dir)
    names = split_names(features) or None
    if names is None and not target:  # the file's features go with its target
        names = split_names(written.get("features", "")) or None
    return target or written.get("target", DEFAULT_TARGET), names


def reference_payload(csv_path: Path, target: str, features: list[str] | None = None) -> str:
    """The reference's request: the first row's features as
    `df.iloc[[0]].to_json(orient="split")`, sent as application/json."""
    import pandas as pd

    if not csv_path.is_file():
        raise ChannelError(f"{csv_path} does not exist: run `make data` (or set TEST_CSV)")
    frame = pd.read_csv(csv_path)
    columns = features or [str(c) for c in frame.columns if c != target]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ChannelError(f"{csv_path} has no column {' '.join(missing)}")
    if frame.empty:
        raise ChannelError(f"{csv_path} has no rows")
    return frame[columns].iloc[[0]].to_json(orient="split")
