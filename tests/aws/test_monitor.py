"""`mlstack monitor` against a SageMaker endpoint's Data Capture in S3 (moto), with files
laid out and written as SageMaker writes them, and the model's baseline in an MLflow
registry: it flags exactly the shifted feature, logs a monitoring run with the report, and
--fail-on-drift exits non-zero. deploy-endpoint's DataCaptureConfig is in test_endpoint.py."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LinearRegression

from mlstack_mlflow_plugin import baseline
from support.stack import point_mlflow_at

pytestmark = pytest.mark.aws

MODEL, ENDPOINT, BUCKET = "diabetes-rf", "mlstack-diabetes-rf", "captures"
FEATURES = ["age", "bmi", "bp"]
HOUR = datetime(2026, 5, 1, 12, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "age": rng.normal(50, 10, rows),
            "bmi": rng.normal(26, 4, rows),
            "bp": rng.normal(90, 12, rows),
        }
    )
    data["progression"] = 5 * data["bmi"] + 0.5 * data["bp"] + rng.normal(0, 5, rows)
    return data


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, LinearRegression]:
    """MODEL@champion with the baseline the training image records, in a SQLite store."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("monitor", artifact_location=(root / "art").as_uri())
    train = frame(500, seed=0)
    model = LinearRegression().fit(train[FEATURES], train["progression"])
    with pytest.MonkeyPatch.context() as patch:
        point_mlflow_at(patch, uri)
        with mlflow.start_run(experiment_id=experiment) as run:
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=MODEL,
                input_example=train[FEATURES][:3],
                pip_requirements=["scikit-learn"],
            )
            baseline.record(
                run.info.run_id, train, FEATURES, "progression", model.predict, "s3://data/train"
            )
    client.set_registered_model_alias(MODEL, "champion", info.registered_model_version)
    return uri, model


def capture_file(rows: pd.DataFrame, model, start: datetime) -> bytes:
    """A file as a SageMaker endpoint writes it: CSV in (one base64-encoded, as for a type
    the config does not list), CSV out, an inferenceId on some records."""
    lines = []
    for index in range(0, len(rows), 2):
        part = rows.iloc[index : index + 2]
        body = part[FEATURES].to_csv(header=False, index=False)
        answer = "\n".join(f"{value:.6f}" for value in model.predict(part[FEATURES]))
        encoded = index == 0
        metadata = {"eventId": str(uuid.uuid4())}
        if index % 4 == 0:
            metadata["inferenceId"] = f"req-{start:%H}-{index}"
        metadata["inferenceTime"] = (start + timedelta(seconds=index)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        record = {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "text/csv",
                    "mode": "INPUT",
                    "data": base64.b64encode(body.encode()).decode() if encoded else body,
                    "encoding": "BASE64" if encoded else "CSV",
                },
                "endpointOutput": {
                    "observedContentType": "text/csv; charset=utf-8",
                    "mode": "OUTPUT",
                    "data": answer,
                    "encoding": "CSV",
                },
            },
            "eventMetadata": metadata,
            "eventVersion": "0",
        }
        lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def put_hour(s3, rows: pd.DataFrame, model, hour: datetime) -> None:
    key = f"data-capture/{ENDPOINT}/AllTraffic/{hour:%Y/%m/%d/%H}/02-13-512-{uuid.uuid4()}.jsonl"
    s3.put_object(
        Bucket=BUCKET, Key=key, Body=capture_file(rows, model, hour + timedelta(minutes=2))
    )


def monitor(env: dict[str, str], output: Path, since: datetime, until: datetime, *args: str):
    command = [
        sys.executable, "-m", "mlstack", "--env-file", "/dev/null", "monitor",
        "--capture-destination", f"s3://{BUCKET}/data-capture", "--model-name", MODEL,
        "--since", since.isoformat(), "--until", until.isoformat(), "--window", "1h",
        "--output-dir", str(output), *args,
    ]  # fmt: skip
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_monitor_reads_a_real_endpoints_captures(moto, registry, tmp_path: Path) -> None:
    uri, model = registry
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    calm, shifted = frame(240, seed=1), frame(240, seed=2)
    shifted["bmi"] += 2 * 4  # two standard deviations
    put_hour(s3, calm, model, HOUR)
    put_hour(s3, shifted, model, HOUR + timedelta(hours=1))
    env = moto.env(MLFLOW_TRACKING_URI=uri)

    first = monitor(env, tmp_path / "calm", HOUR, HOUR + timedelta(hours=1), "--fail-on-drift")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "DRIFT" not in first.stdout

    both = monitor(env, tmp_path / "both", HOUR, HOUR + timedelta(hours=2), "--fail-on-drift")
    assert both.returncode == 3, both.stderr[-3000:]
    flagged = [line.split()[0] for line in both.stdout.splitlines() if " DRIFT " in line]
    assert flagged == ["bmi", "prediction"]
    summary = json.loads((tmp_path / "both" / "summary.json").read_text())
    assert summary["drifted_features"] == ["bmi"]
    assert summary["events"] == 240 and summary["rows"] == 480
    assert [w["drifted_features"] for w in summary["windows"]] == [[], ["bmi"]]
    assert "Drift in 1 of 3" in (tmp_path / "both" / "report.html").read_text()

    client = MlflowClient(uri)
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlstack.monitor.drift"] == "true"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert artifacts == {"monitoring/report.html", "monitoring/summary.json"}
    history = client.get_metric_history(run.info.run_id, "drift_share")
    assert [m.step for m in history] == [0, 1] and history[1].value > history[0].value
    assert history[1].timestamp - history[0].timestamp == 3600 * 1000
    contexts = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert contexts == {"monitoring", "reference"}
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert version.tags["mlstack.monitor.last_run_id"] == run.info.run_id


def test_no_baseline_is_one_line(moto, registry, tmp_path: Path) -> None:
    uri, _ = registry  # the module's store: a run of its own, without a baseline
    client = MlflowClient(uri)
    run = client.create_run(client.get_experiment_by_name("monitor").experiment_id)
    client.create_registered_model("bare")
    version = client.create_model_version("bare", f"runs:/{run.info.run_id}/m", run.info.run_id)
    client.set_registered_model_alias("bare", "champion", version.version)
    moto.client("s3").create_bucket(Bucket=BUCKET)
    env = moto.env(MLFLOW_TRACKING_URI=uri)
    result = monitor(env, tmp_path / "out", HOUR, HOUR + timedelta(hours=1), "--model-name", "bare")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"mlstack: error: run {run.info.run_id} of models:/bare@champion (version 1) "
        "has no monitoring baseline (monitoring/baseline.json): train it with the training "
        "image, whose job records one for every model it logs"
    ]
