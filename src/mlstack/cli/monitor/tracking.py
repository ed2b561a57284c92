"""The monitoring run in MLflow, beside the model's training run and linked to its version.

- In the training run's experiment (or --experiment), named monitor-ENDPOINT-TIME.
- Linked to the model: the logged model as the run's input (MLflow 3 LoggedModelInput), the
  metrics attached to it (model_id, so the model's page shows them), tags naming the
  registered model, version and endpoint; the version itself tagged with its latest
  monitoring run and verdict.
- Metrics per time window, at the window's start time with the window's number as step, so
  the UI charts drift, traffic and quality over time: drift_share, drift_distance.FEATURE,
  prediction_drift_distance, traffic_requests, traffic_rows, mae, rmse; and the whole range's
  drifted_features and drift_share_overall.
- The captured traffic and the training data as dataset inputs (contexts "monitoring",
  "reference"); report.html and summary.json as artifacts under monitoring/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlstack.cli.monitor.baseline import Baseline

ARTIFACT_DIR = "monitoring"
TAG = "mlstack.monitor"
METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_key(*parts: str) -> str:
    """A metric name MLflow accepts, from parts such as a feature name."""
    return METRIC_NAME.sub("_", ".".join(parts))


def window_metrics(summary: dict[str, Any]) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp ms, step) for every window's figures."""
    values = []
    for step, window in enumerate(summary.get("windows", [])):
        stamp = window["start_seconds"] * 1000
        figures = {
            "traffic_requests": window["requests"],
            "traffic_rows": window["rows"],
            "drift_share": window["drift_share"],
            "prediction_drift_distance": window["prediction_distance"],
            "mae": window.get("mae"),
            "rmse": window.get("rmse"),
        }
        for name, distance in window["distances"].items():
            figures[metric_key("drift_distance", name)] = distance
        values += [(k, float(v), stamp, step) for k, v in figures.items() if v is not None]
    return values


def start_run(
    client: Any, baseline: Baseline, capture_uri: str, experiment_id: str | None, name: str
) -> str:
    """The monitoring run, started (its id goes into the report)."""
    tags = {
        f"{TAG}.model_name": baseline.name,
        f"{TAG}.model_version": baseline.version,
        f"{TAG}.model_uri": baseline.model_uri,
        f"{TAG}.training_run_id": baseline.run_id,
        f"{TAG}.capture_uri": capture_uri,
    }
    run = client.create_run(experiment_id or baseline.experiment_id, run_name=name, tags=tags)
    return run.info.run_id


def finish_run(
    client: Any,
    run_id: str,
    baseline: Baseline,
    summary: dict[str, Any],
    files: Sequence[Path],
    current: Any,
) -> None:
    """Log the findings, inputs and report on the run, end it, tag the model version."""
    from mlflow.entities import Metric, Param, RunTag

    drift = str(summary["drift_detected"]).lower()
    try:
        model = baseline.model_id
        metrics = [Metric(k, v, t, s, model_id=model) for k, v, t, s in window_metrics(summary)]
        now = int(time.time() * 1000)
        overall = {
            "drifted_features": len(summary["drifted_features"]),
            "drift_share_overall": summary.get("drift_share", 0.0),
            "captured_rows": summary["rows"],
        }
        metrics += [Metric(k, float(v), now, 0, model_id=model) for k, v in overall.items()]
        for first in range(0, len(metrics), 1000):  # log_batch takes 1000 metrics at most
            client.log_batch(run_id, metrics=metrics[first : first + 1000])
        params = {
            "stattest": summary["stattest"],
            "distance_threshold": summary["distance_threshold"],
            "p_value": summary["p_value"],
            "window_seconds": summary["window_seconds"],
            "since": summary["captures"]["since"],
            "until": summary["captures"]["until"],
        }
        tags = {
            f"{TAG}.drift": drift,
            f"{TAG}.drifted_features": ",".join(summary["drifted_features"])[:5000],
            "mlflow.note.content": _note(summary),
        }
        client.log_batch(
            run_id,
            params=[Param(k, str(v)) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        if current is not None and len(current):
            _log_inputs(client, run_id, baseline, current, summary["captures"]["uri"])
        for path in files:
            client.log_artifact(run_id, str(path), ARTIFACT_DIR)
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    client.set_model_version_tag(baseline.name, baseline.version, f"{TAG}.last_run_id", run_id)
    client.set_model_version_tag(baseline.name, baseline.version, f"{TAG}.drift", drift)


def _note(summary: dict[str, Any]) -> str:
    """The run's description in the UI: the verdict in one paragraph."""
    if not summary["rows"]:
        return "No captured traffic in the range."
    drifted = summary["drifted_features"]
    verdict = f"Drift in {', '.join(drifted)}." if drifted else "No feature drifted."
    return (
        f"{verdict} {summary['events']} requests, {summary['rows']} rows; "
        f"see monitoring/report.html."
    )


def _log_inputs(
    client: Any, run_id: str, baseline: Baseline, current: Any, capture_uri: str
) -> None:
    """The logged model and both data sets as the run's inputs."""
    import warnings

    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    from mlstack.cli.monitor.captures import KEY, ROW, TIME

    with warnings.catch_warnings():  # "the source can be interpreted in multiple ways"
        warnings.simplefilter("ignore")
        captured = mlflow.data.from_pandas(
            current.drop(columns=[TIME, KEY, ROW], errors="ignore"),
            source=capture_uri,
            name="captured",
        )
        reference = mlflow.data.from_pandas(
            baseline.reference, source=baseline.source or None, name=baseline.dataset
        )
    datasets = [
        DatasetInput(
            captured._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, "monitoring")]
        ),
        DatasetInput(
            reference._to_mlflow_entity(), [InputTag(MLFLOW_DATASET_CONTEXT, "reference")]
        ),
    ]
    models = [LoggedModelInput(baseline.model_id)] if baseline.model_id else None
    client.log_inputs(run_id, datasets=datasets, models=models)
