"""The built-in job's hyperparameters, read from its command line.

SageMaker writes every hyperparameter as a string to hyperparameters.json. The training
toolkit JSON-decodes each value where it can (sagemaker_training.environment
`read_hyperparameters`: the SageMaker SDK's script mode JSON-encodes them, so "\"abc\"" and
"abc" both give abc) and passes them to the script as `--name value` pairs
(`Environment.to_cmd_args`), names as the job spelled them. Here names compare lower-case with
'-' and '_' alike, so the reference's tracking_uri and n-estimators work as written and so do
their other spellings; a name given twice is an error, the keys SageMaker adds itself
(`_tuning_objective_metric`, `sagemaker_*`) pass quietly, other unknown ones with a warning.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from mlstack.training.errors import TrainingError

log = logging.getLogger(__name__)

KNOWN = {
    "target": "the column to predict (required)",
    "features": "feature columns, separated by spaces or commas (default: all but the target)",
    "n-estimators": "trees in the forest, a whole number of at least 1 (default 100)",
    "min-samples-leaf": "samples in a leaf, a whole number of at least 1 (default 3)",
    "random-state": "seed, a whole number of at least 0 (default: random)",
    "registered-model-name": "also register the logged model under this name",
    # Applied by the image's MLflow plugin and runner; named here so they are not unknown.
    "tracking-uri": "MLflow tracking URI (default MLFLOW_TRACKING_URI)",
    "experiment-name": "MLflow experiment (default MLFLOW_EXPERIMENT_NAME)",
    "parent-run-id": "nest the job's run under this (tuning) run",
}
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


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are the job's one-line errors, not a usage text and exit 2."""

    def error(self, message: str) -> NoReturn:
        raise TrainingError(f"hyperparameters: {message}")


def parser() -> argparse.ArgumentParser:
    """The built-in script's command line (`random_forest.py --help`)."""
    parser = _Parser(
        prog="random_forest.py",
        description="The training image's built-in job: a RandomForestRegressor on the train "
        "and test channels, tracked in MLflow.",
        allow_abbrev=False,
    )
    for name, text in KNOWN.items():
        parser.add_argument(f"--{name}", metavar="VALUE", help=text)
    return parser


def normalise_name(name: str) -> str:
    """Hyperparameter names compare lower-case with '_' read as '-'."""
    return name.strip().lower().replace("_", "-")


def command_line(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(argv as the parser reads it, the unknown names): each `--name value` pair (the
    toolkit's: the token after a name is its value, whatever it looks like) or `--name=value`
    as one `--name=value`, its name normalised; the keys the platform adds left out; a name
    given twice is an error."""
    args: list[str] = []
    unknown: list[str] = []
    seen: dict[str, str] = {}
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("-"):
            unknown.append(token)
            continue
        raw, equals, value = token.lstrip("-").partition("=")
        name = normalise_name(raw)
        if name in ("help", "h"):
            args.append("--help")
            continue
        if not equals:
            value = next(tokens, "")
        if raw.startswith(PLATFORM_PREFIXES):
            continue
        if name not in KNOWN:
            unknown.append(raw)
        elif name in seen:
            raise TrainingError(
                f"hyperparameter {name} is given twice (as {seen[name]!r} and {raw!r})"
            )
        else:
            seen[name] = raw
            args.append(f"--{name}={value}")
    return args, unknown


def _whole_number(raw: str | None, name: str, minimum: int) -> int | None:
    """A whole number of at least minimum; None when not given."""
    if raw is None or raw.strip() == "":
        return None
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


def _text(value: str | None) -> str | None:
    """A text value, None when not given or blank."""
    return (value or "").strip() or None


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def parse(argv: Sequence[str]) -> Hyperparameters:
    """Check and type the hyperparameters of the script's command line."""
    args, unknown = command_line(argv)
    for name in unknown:
        log.warning("ignoring unknown hyperparameter %r (known: %s)", name, ", ".join(KNOWN))
    values = parser().parse_args(args)
    target = _text(values.target)
    if not target:
        raise TrainingError(
            "hyperparameter target is not set: name the column to predict "
            "(`mlstack data` prints the features and target of its data)"
        )
    features = parse_features(values.features or "")
    if target in features:
        raise TrainingError(f"hyperparameter features must not include the target {target!r}")
    return Hyperparameters(
        target=target,
        features=features,
        n_estimators=_or(_whole_number(values.n_estimators, "n-estimators", 1), 100),
        min_samples_leaf=_or(_whole_number(values.min_samples_leaf, "min-samples-leaf", 1), 3),
        random_state=_whole_number(values.random_state, "random-state", 0),
        tracking_uri=_text(values.tracking_uri),
        experiment_name=_text(values.experiment_name),
        registered_model_name=_text(values.registered_model_name),
        parent_run_id=_text(values.parent_run_id),
        ignored=tuple(unknown),
    )
