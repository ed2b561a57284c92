"""Reading the job's hyperparameters from hyperparameters.json.

SageMaker passes every hyperparameter as a string. The SageMaker Python SDK's script mode
JSON-encodes each value first, so the string abc arrives as "\"abc\"" while 100 arrives as
"100"; both forms are accepted. Names match with '-' and '_' interchangeable, so the
reference's tracking_uri and n-estimators work as written and so do their other spellings.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlstack.training.errors import TrainingError

log = logging.getLogger(__name__)

KNOWN = (
    "tracking-uri",
    "experiment-name",
    "n-estimators",
    "min-samples-leaf",
    "features",
    "target",
    "random-state",
    "registered-model-name",
    "parent-run-id",
)
# Keys the SageMaker SDK and the hyperparameter tuner add on their own.
PLATFORM_PREFIXES = ("sagemaker_", "sagemaker-", "_")


@dataclass(frozen=True)
class Hyperparameters:
    """The job's settings, checked and typed."""

    target: str
    features: tuple[str, ...] = ()  # empty: every column but the target
    n_estimators: int = 100
    min_samples_leaf: int = 3
    random_state: int | None = None
    tracking_uri: str | None = None
    experiment_name: str | None = None
    registered_model_name: str | None = None
    parent_run_id: str | None = None  # a tuning run: this job's run is nested under it
    ignored: tuple[str, ...] = field(default=(), compare=False)


def decode_value(value: object) -> str:
    """One hyperparameter value as the plain string it stands for.

    A JSON-encoded string ("\"abc\"") is decoded; anything else stays as it is, so a plain
    string that merely looks like JSON (100, true) is not reinterpreted.
    """
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
            try:
                decoded = json.loads(text)
            except ValueError:
                return text
            if isinstance(decoded, str):
                return decoded.strip()
        return text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return ""
    raise TrainingError(f"hyperparameter values must be strings, got {json.dumps(value)}")


def normalise_name(name: str) -> str:
    """Hyperparameter names compare lower-case with '_' read as '-'."""
    return name.strip().lower().replace("_", "-")


def _whole_number(values: Mapping[str, str], name: str, default: int | None, minimum: int):
    raw = values.get(name, "")
    if raw == "":
        return default
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number != int(number):
        raise TrainingError(
            f"hyperparameter {name} must be a whole number of at least {minimum}, got {raw!r}"
        )
    if number < minimum:
        raise TrainingError(f"hyperparameter {name} must be at least {minimum}, got {raw!r}")
    return int(number)


def parse_features(raw: str) -> tuple[str, ...]:
    """Column names separated by spaces (commas also work); empty means all but the target."""
    names = [name for name in re.split(r"[\s,]+", raw.strip()) if name]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TrainingError(f"hyperparameter features lists {', '.join(repeated)} more than once")
    return tuple(names)


def parse(raw: Mapping[str, object]) -> Hyperparameters:
    """Check and type the hyperparameters read from hyperparameters.json."""
    values: dict[str, str] = {}
    ignored: list[str] = []
    for key, value in raw.items():
        if key.startswith(PLATFORM_PREFIXES):
            continue
        name = normalise_name(key)
        if name not in KNOWN:
            ignored.append(key)
            continue
        if name in values:
            raise TrainingError(f"hyperparameter {name} is given twice (as {key!r} and another)")
        values[name] = decode_value(value)
    for key in ignored:
        log.warning("ignoring unknown hyperparameter %r (known: %s)", key, ", ".join(KNOWN))
    target = values.get("target", "")
    if not target:
        raise TrainingError(
            "hyperparameter target is not set: name the column to predict "
            "(`mlstack data` prints the features and target of its data)"
        )
    features = parse_features(values.get("features", ""))
    if target in features:
        raise TrainingError(f"hyperparameter features must not include the target {target!r}")
    return Hyperparameters(
        target=target,
        features=features,
        n_estimators=_whole_number(values, "n-estimators", 100, 1),
        min_samples_leaf=_whole_number(values, "min-samples-leaf", 3, 1),
        random_state=_whole_number(values, "random-state", None, 0),
        tracking_uri=values.get("tracking-uri") or None,
        experiment_name=values.get("experiment-name") or None,
        registered_model_name=values.get("registered-model-name") or None,
        parent_run_id=values.get("parent-run-id") or None,
        ignored=tuple(ignored),
    )


def load(path: Path) -> Hyperparameters:
    """Read hyperparameters.json; a missing file means no hyperparameters were given."""
    if not path.exists():
        return parse({})
    try:
        raw = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise TrainingError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise TrainingError(f"{path} must hold a JSON object of name -> string")
    return parse(raw)
