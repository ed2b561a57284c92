"""The monitor's findings: drift over the whole range and per time window, what the traffic
lacks or adds, traffic over time, and model quality when ground truth is given."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack.cli.monitor import drift
from mlstack.cli.monitor.baseline import Baseline
from mlstack.cli.monitor.captures import KEY, PREDICTION, ROW, TIME, CaptureError, Traffic

GROUND_TRUTH_KEYS = ("inference_id", "inferenceId", "event_id", "eventId")


@dataclass(frozen=True)
class Options:
    """How to judge drift and cut time."""

    rule: drift.Rule = field(default_factory=drift.Rule)
    window_seconds: int = 3600


def window_starts(times: Any, seconds: int) -> Any:
    """Each row's window: its time floored to a multiple of `seconds` since the epoch."""
    import pandas as pd

    since_epoch = (pd.to_datetime(times, utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
        seconds=1
    )
    return (since_epoch // seconds) * seconds


def read_ground_truth(path: Path, label: str | None) -> tuple[Any, str]:
    """The ground truth CSV: an inference id column and the label column."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise CaptureError(f"--ground-truth {path}: cannot read it as CSV ({error})") from None
    key = next((column for column in GROUND_TRUTH_KEYS if column in frame.columns), None)
    if key is None:
        raise CaptureError(
            f"--ground-truth {path}: no inference_id column (the id sent as "
            "X-Amzn-SageMaker-Inference-Id, or the record's eventId)"
        )
    names = [label] if label else [c for c in frame.columns if c != key]
    if not names or names[0] not in frame.columns:
        raise CaptureError(
            f"--ground-truth {path}: no label column {label!r}; name it with --label-column"
        )
    out = frame[[key, names[0]]].rename(columns={key: KEY, names[0]: "__label__"})
    out[KEY] = out[KEY].astype(str)
    out[ROW] = out.groupby(KEY).cumcount()  # several rows of one request, in order
    return out, names[0]


def quality(rows: Any, truth: Any) -> dict[str, Any] | None:
    """MAE and RMSE of the captured predictions against the labels they match."""
    import pandas as pd
    from sklearn.metrics import mean_absolute_error, root_mean_squared_error

    keyed = rows[[KEY, ROW, PREDICTION, "__window__"]].assign(**{KEY: rows[KEY].astype(str)})
    joined = keyed.merge(truth, on=[KEY, ROW], how="inner")
    joined["__label__"] = pd.to_numeric(joined["__label__"], errors="coerce")
    joined[PREDICTION] = pd.to_numeric(joined[PREDICTION], errors="coerce")
    joined = joined.dropna(subset=["__label__", PREDICTION])
    if joined.empty:
        return None

    def scores(part: Any) -> dict[str, float]:
        return {
            "mae": float(mean_absolute_error(part["__label__"], part[PREDICTION])),
            "rmse": float(root_mean_squared_error(part["__label__"], part[PREDICTION])),
            "rows": len(part),
        }

    windows = {int(start): scores(part) for start, part in joined.groupby("__window__")}
    return {**scores(joined), "labelled_rows": len(truth), "windows": windows}


def iso(seconds: float | datetime) -> str:
    when = seconds if isinstance(seconds, datetime) else datetime.fromtimestamp(seconds, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def analyse(
    baseline: Baseline, traffic: Traffic, options: Options, truth: Any = None
) -> dict[str, Any]:
    """The summary: every finding as plain values (the JSON summary, the report's data)."""
    rows = traffic.rows
    features = baseline.feature_names
    summary: dict[str, Any] = {
        "stattest": options.rule.stattest,
        "distance_threshold": options.rule.distance_threshold,
        "p_value": options.rule.p_value,
        "window_seconds": options.window_seconds,
        "events": traffic.events,
        "files": traffic.files,
        "rows": 0 if rows is None else len(rows),
        "unreadable": traffic.unreadable,
    }
    if rows is None or rows.empty:
        summary.update(features=[], prediction=None, drifted_features=[], drift_detected=False)
        summary.update(schema={"missing": features, "unexpected": []}, windows=[], quality=None)
        return summary
    rows = rows.assign(__window__=window_starts(rows[TIME], options.window_seconds))
    overall = drift.compare_all(baseline, rows, features, PREDICTION, options.rule)
    schema = drift.schema_differences(features, rows)
    if traffic.positional_width:
        widths = ", ".join(map(str, sorted(traffic.positional_width)))
        schema["positional_mismatch"] = (
            f"rows of {widths} values where the model has {len(features)} features"
        )
    scored = quality(rows, truth) if truth is not None else None
    windows = []
    for start, part in rows.groupby("__window__"):
        window = drift.compare_all(baseline, part, features, PREDICTION, options.rule)
        entry = {
            "start": iso(int(start)),
            "start_seconds": int(start),
            "requests": int(part[KEY].nunique()),
            "rows": len(part),
            "drift_share": window.share,
            "drifted_features": window.drifted,
            "distances": {c.name: c.distance for c in window.features},
            "prediction_distance": window.prediction.distance if window.prediction else None,
        }
        if scored and int(start) in scored["windows"]:
            entry.update({k: scored["windows"][int(start)][k] for k in ("mae", "rmse")})
        windows.append(entry)
    summary.update(
        since_observed=iso(rows[TIME].min()),
        until_observed=iso(rows[TIME].max()),
        features=[column.as_dict() for column in overall.features],
        prediction=overall.prediction.as_dict() if overall.prediction else None,
        prediction_reference=(
            "the model's predictions on its training data"
            if baseline.prediction
            else f"the training target {baseline.target!r} (no reference predictions recorded)"
        ),
        drifted_features=overall.drifted,
        drift_share=overall.share,
        drift_detected=bool(overall.drifted),
        prediction_drifted=bool(overall.prediction and overall.prediction.drifted),
        schema=schema,
        windows=windows,
        quality=({k: v for k, v in scored.items() if k != "windows"} if scored else None),
    )
    return summary


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
