"""The monitoring baseline: what `mlstack monitor` compares an endpoint's traffic with,
recorded on the run that logs the model.

On a run that logs a model, from its training data:
- an MLflow dataset input (context "training"): the training channel's name, source, digest,
  schema and profile, as `mlflow.log_input` records it;
- `monitoring/baseline.json`: the model's input features (as its signature names them) with
  their types and statistics (count, missing, mean, std, min, quantiles, max, or the
  categories' frequencies), the target, the row count;
- `monitoring/reference.csv`: up to REFERENCE_ROWS training rows (a seeded random sample),
  with the target and the model's prediction for each, for the distances, tests and plots.

A script-mode job records it whenever the script logs a model with a signature (`install`
wraps MLflow's `Model.log`, which every flavor's log_model calls, in MLflow 2.x and 3.x):
the training data is the job's `train` channel (else its only channel), its CSV files with a
header naming the model's inputs. The built-in job calls `record` itself. Nothing here may
fail a job: a baseline that cannot be made is one line on stderr, and the job goes on.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mlstack_mlflow_plugin import on_import, settings

ARTIFACT_DIR = "monitoring"
BASELINE_FILE = "baseline.json"
REFERENCE_FILE = "reference.csv"
REFERENCE_ROWS = 5000
PREDICTION_COLUMN = "prediction"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
TOP_CATEGORIES = 20
MODULE = "mlflow.models.model"
PATCHED = "__mlstack_baseline__"
# Keyword arguments of the flavors' log_model that carry the model object itself.
MODEL_ARGUMENTS = ("sk_model", "xgb_model", "lgb_model", "cb_model", "model")


def _say(message: str) -> None:
    print(f"mlstack: {message}", file=sys.stderr, flush=True)


def statistics(frame: Any, features: Sequence[str]) -> list[dict[str, Any]]:
    """Per feature: its type and the statistics the monitor reports beside the drift."""
    import pandas as pd

    described = []
    for name in features:
        column = frame[name]
        entry: dict[str, Any] = {
            "name": name,
            "count": int(column.notna().sum()),
            "missing": int(column.isna().sum()),
        }
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            values = column.dropna().astype(float)
            entry["type"] = "numeric"
            if len(values):
                entry.update(
                    mean=float(values.mean()),
                    std=float(values.std(ddof=0)),
                    min=float(values.min()),
                    max=float(values.max()),
                    quantiles={str(q): float(values.quantile(q)) for q in QUANTILES},
                )
        else:
            entry["type"] = "categorical"
            shares = column.astype(str).value_counts(normalize=True).head(TOP_CATEGORIES)
            entry["categories"] = {str(k): float(v) for k, v in shares.items()}
        described.append(entry)
    return described


def reference_sample(frame: Any, rows: int = REFERENCE_ROWS) -> Any:
    """At most `rows` rows, a seeded random sample (the whole frame when it is smaller)."""
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=0)


def record(
    run_id: str,
    frame: Any,
    features: Sequence[str],
    target: str | None,
    predict: Callable[[Any], Any] | None,
    source: str,
    name: str = "train",
    client: Any = None,
) -> None:
    """Log the baseline of `frame` (the training data) on the run: dataset input, statistics,
    reference sample with the model's predictions (predict(features frame) -> values)."""
    import mlflow

    client = client or mlflow.MlflowClient()
    features = list(features)
    columns = features + ([target] if target and target in frame.columns else [])
    sample = reference_sample(frame[columns]).reset_index(drop=True)
    prediction = PREDICTION_COLUMN
    while prediction in columns:
        prediction = f"_{prediction}"
    predicted = False
    if predict is not None:
        try:
            sample[prediction] = list(_flat(predict(sample[features])))
            predicted = True
        except Exception as error:  # the baseline has no predictions; the job goes on
            _say(f"monitoring baseline without predictions: {type(error).__name__}: {error}")
    baseline = {
        "version": 1,
        "source": source,
        "dataset": name,
        "rows": len(frame),
        "reference_rows": len(sample),
        "features": statistics(frame, features),
        "target": target if target in columns else None,
        "prediction": prediction if predicted else None,
    }
    with tempfile.TemporaryDirectory(prefix="mlstack-baseline-") as tmp:
        folder = Path(tmp) / ARTIFACT_DIR
        folder.mkdir()
        (folder / BASELINE_FILE).write_text(json.dumps(baseline, indent=2) + "\n")
        sample.to_csv(folder / REFERENCE_FILE, index=False)
        client.log_artifacts(run_id, str(folder), ARTIFACT_DIR)
    _log_dataset(client, run_id, frame[columns], source, name, target)


def _flat(predictions: Any) -> Any:
    """One value per row: the first column of a two-dimensional answer."""
    import numpy as np

    values = np.asarray(predictions.to_numpy() if hasattr(predictions, "to_numpy") else predictions)
    return values[:, 0] if values.ndim == 2 else values


def _log_dataset(
    client: Any, run_id: str, frame: Any, source: str, name: str, target: str | None
) -> None:
    """The training data as the run's dataset input (MLflow 2.4 and later)."""
    try:
        import mlflow.data
        from mlflow.entities import DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT
    except ImportError:
        return
    import warnings

    targets = target if target in frame.columns else None
    with warnings.catch_warnings():  # "the source can be interpreted in multiple ways"
        warnings.simplefilter("ignore")
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, targets=targets)
    tags = [InputTag(key=MLFLOW_DATASET_CONTEXT, value="training")]
    client.log_inputs(run_id, [DatasetInput(dataset=dataset._to_mlflow_entity(), tags=tags)])


# --- script mode: after the script's log_model ------------------------------------------------


def training_channel(job: settings.JobEnvironment) -> tuple[str, Path] | None:
    """The job's training data: its `train` channel, else `training`, else its only one."""
    names = list(job.channels)
    for wanted in ("train", "training"):
        if wanted in names:
            return wanted, _channel_dir(wanted)
    return (names[0], _channel_dir(names[0])) if len(names) == 1 else None


def _channel_dir(name: str) -> Path:
    # SageMaker's SM_CHANNEL_<NAME>, else its fixed layout.
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}") or f"/opt/ml/input/data/{name}")


def read_channel(directory: Path, features: Sequence[str]) -> Any:
    """The channel's CSV files with a header naming every feature, as one frame."""
    import pandas as pd

    frames = []
    for path in sorted(directory.rglob("*.csv")):
        frame = pd.read_csv(path)
        if set(features) <= set(frame.columns):
            frames.append(frame)
    if not frames:
        raise ValueError(
            f"no CSV file in {directory} has a header naming the model's inputs "
            f"({', '.join(features[:5])}{', ...' if len(features) > 5 else ''})"
        )
    return pd.concat(frames, ignore_index=True)


def target_of(frame: Any, features: Sequence[str], job: settings.JobEnvironment) -> str | None:
    """The target: the `target` hyperparameter, else the one column that is not an input."""
    from mlstack_mlflow_plugin.job import hyperparameter

    named = hyperparameter(job.hyperparameters, "target")
    if named and named in frame.columns:
        return named
    others = [column for column in frame.columns if column not in features]
    return others[0] if len(others) == 1 else None


def after_log(info: Any, arguments: dict[str, Any]) -> None:
    """What the wrapped Model.log does after logging, in a job: record the baseline once per
    run (never raising)."""
    job = settings.read()
    run_id = getattr(info, "run_id", None)
    if not job.in_job or not run_id or run_id in _recorded:
        return
    _recorded.add(run_id)
    try:
        signature = getattr(info, "signature", None)
        inputs = signature.inputs.input_names() if signature is not None else []
        if not inputs or not all(isinstance(name, str) for name in inputs):
            _say("no monitoring baseline: the model's signature names no input columns")
            return
        channel = training_channel(job)
        if channel is None:
            _say("no monitoring baseline: the job has no `train` channel")
            return
        name, directory = channel
        frame = read_channel(directory, inputs)
        model = next((arguments[k] for k in MODEL_ARGUMENTS if k in arguments), None)
        predict = getattr(model, "predict", None)
        record(run_id, frame, inputs, target_of(frame, inputs, job), predict, str(directory), name)
        _say(f"monitoring baseline recorded on run {run_id} ({len(frame)} rows of {name})")
    except Exception as error:  # never fail the user's job for the baseline
        _say(f"no monitoring baseline: {type(error).__name__}: {error}")


_recorded: set[str] = set()


def patch(module: ModuleType) -> None:
    """Wrap Model.log so a job's logged model gets its baseline."""
    model_class = getattr(module, "Model", None)
    original = model_class.__dict__.get("log") if model_class is not None else None
    function = getattr(original, "__func__", None)
    if function is None or getattr(function, PATCHED, False):
        return

    @functools.wraps(function)
    def log(cls: Any, *args: Any, **kwargs: Any) -> Any:
        info = function(cls, *args, **kwargs)
        after_log(info, kwargs)
        return info

    setattr(log, PATCHED, True)
    model_class.log = classmethod(log)


def install() -> None:
    """Wrap Model.log now if MLflow's model module is imported, else as soon as it is."""
    on_import.install(MODULE, patch)
