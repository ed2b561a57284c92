"""The whole job on the host, without Docker: outputs, MLflow run, failures, signals.

Tracking goes to a SQLite store here; the image's suite (test_image.py) runs the same job
against the tracking-server image.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlstack.training import job, train
from mlstack.training.entrypoint import main
from mlstack.training.errors import TrainingError
from mlstack.training.paths import OptML
from mlstack.training.tracking import FAILURE_TAG, redact, wait_for_server
from support.stack import point_mlflow_at

from .helpers import FEATURES, METRIC_REGEXES, TARGET


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite tracking store shared by the module (creating its schema takes seconds)."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture
def experiment(sqlite_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh experiment with its artifacts under tmp_path; MLflow's global URI restored."""
    point_mlflow_at(monkeypatch, None)
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    name = f"job-test-{uuid.uuid4().hex[:8]}"
    MlflowClient(sqlite_uri).create_experiment(name, artifact_location=(tmp_path / "art").as_uri())
    return name


def only_run(uri: str, experiment: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_trains_without_tracking(
    make_opt_ml: Callable[..., OptML], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    opt_ml = make_opt_ml()
    assert job.run_job(opt_ml, {}) == 0
    assert not opt_ml.failure_file.exists()
    for name, pattern in METRIC_REGEXES.items():
        assert any(re.search(pattern, line) for line in caplog.messages), name
    model = mlflow.pyfunc.load_model(str(opt_ml.model_dir))
    test = pd.read_csv(opt_ml.channel("test") / "test.csv")
    assert model.predict(test[FEATURES.split()].head(3)).shape == (3,)
    metrics = json.loads((opt_ml.output_data_dir / "metrics.json").read_text())
    assert set(metrics) == set(METRIC_REGEXES)
    assert (opt_ml.output_data_dir / job.PLOT_FILE).read_bytes().startswith(b"\x89PNG")


def test_tracked_run(
    make_opt_ml: Callable[..., OptML], sqlite_uri: str, experiment: str, tmp_path: Path
) -> None:
    opt_ml = make_opt_ml(
        {"n_estimators": "5", "target": TARGET, "experiment_name": json.dumps(experiment)}
    )
    env = {
        "MLFLOW_TRACKING_URI": sqlite_uri,
        "TRAINING_JOB_NAME": "job-abc",
        "AWS_REGION": "eu-west-1",
    }
    assert job.run_job(opt_ml, env) == 0

    run = only_run(sqlite_uri, experiment)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "job-abc"
    assert run.data.tags["sagemaker.training_job_name"] == "job-abc"
    assert "eu-west-1.console.aws.amazon.com" in run.data.tags["mlflow.source.name"]
    assert run.data.params["n-estimators"] == "5"
    assert run.data.params["features"] == FEATURES  # every column but the target
    assert set(run.data.metrics) == set(METRIC_REGEXES)
    client = MlflowClient(sqlite_uri)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "plots",
        "feature_importances.json",
        "monitoring",
    }
    [logged] = client.search_logged_models([run.info.experiment_id])
    assert logged.source_run_id == run.info.run_id
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert model.metadata.get_input_schema().input_names() == FEATURES.split()
    # The monitoring baseline: the train channel as the run's dataset input, its statistics,
    # and a reference sample with the model's predictions (`mlstack monitor` reads them).
    [dataset] = run.inputs.dataset_inputs
    assert (dataset.dataset.name, dataset.tags[0].value) == ("train", "training")
    folder = Path(client.download_artifacts(run.info.run_id, "monitoring", str(tmp_path)))
    baseline = json.loads((folder / "baseline.json").read_text())
    assert [f["name"] for f in baseline["features"]] == FEATURES.split()
    assert (baseline["target"], baseline["prediction"]) == (TARGET, "prediction")
    reference = pd.read_csv(folder / "reference.csv")
    assert len(reference) == baseline["rows"] == baseline["reference_rows"]
    expected = model.predict(reference[FEATURES.split()])
    assert reference["prediction"].tolist() == pytest.approx(list(expected))


def test_failure_after_the_run_started_ends_it_failed(
    make_opt_ml: Callable[..., OptML], sqlite_uri: str, experiment: str
) -> None:
    opt_ml = make_opt_ml(
        {"target": TARGET, "features": "age wingspan", "experiment_name": experiment}
    )
    assert job.run_job(opt_ml, {"MLFLOW_TRACKING_URI": sqlite_uri}) == 1
    reason = opt_ml.failure_file.read_text()
    assert reason.startswith("unknown feature wingspan: not in the train data")
    run = only_run(sqlite_uri, experiment)
    assert run.info.status == "FAILED"
    assert run.data.tags[FAILURE_TAG] == reason.strip()
    assert not any(opt_ml.model_dir.iterdir())


def test_bad_hyperparameter_fails_before_any_run(
    make_opt_ml: Callable[..., OptML], sqlite_uri: str, experiment: str
) -> None:
    opt_ml = make_opt_ml({"target": TARGET, "n-estimators": "many", "experiment_name": experiment})
    assert job.run_job(opt_ml, {"MLFLOW_TRACKING_URI": sqlite_uri}) == 1
    assert "n-estimators must be a whole number" in opt_ml.failure_file.read_text()
    client = MlflowClient(sqlite_uri)
    assert client.search_runs([client.get_experiment_by_name(experiment).experiment_id]) == []


def test_unexpected_errors_are_reported_in_one_line(
    make_opt_ml: Callable[..., OptML], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> None:
        raise ValueError("Input X contains infinity\nsecond line")

    monkeypatch.setattr(train, "fit", broken)
    opt_ml = make_opt_ml()
    assert job.run_job(opt_ml, {}) == 1
    assert opt_ml.failure_file.read_text() == (
        "unexpected error: ValueError: Input X contains infinity\n"
    )


def test_sigterm_ends_the_run_killed(
    make_opt_ml: Callable[..., OptML],
    sqlite_uri: str,
    experiment: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def stopped(*_args: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler interrupts this
        raise AssertionError("SIGTERM did not interrupt training")

    monkeypatch.setattr(train, "fit", stopped)
    previous = signal.getsignal(signal.SIGTERM)
    opt_ml = make_opt_ml({"target": TARGET, "experiment_name": experiment})
    started = time.monotonic()
    assert job.run_job(opt_ml, {"MLFLOW_TRACKING_URI": sqlite_uri}) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGTERM) is previous
    assert "stopped by SIGTERM" in opt_ml.failure_file.read_text()
    assert only_run(sqlite_uri, experiment).info.status == "KILLED"


def test_model_dir_must_be_empty(make_opt_ml: Callable[..., OptML]) -> None:
    opt_ml = make_opt_ml()
    (opt_ml.model_dir / "old.txt").write_text("left over")
    assert job.run_job(opt_ml, {}) == 1
    assert "is not empty" in opt_ml.failure_file.read_text()


def test_tracking_wait_timeout_is_checked(make_opt_ml: Callable[..., OptML]) -> None:
    opt_ml = make_opt_ml()
    assert job.run_job(opt_ml, {"TRACKING_WAIT_TIMEOUT": "soon"}) == 1
    assert "TRACKING_WAIT_TIMEOUT must be a number of seconds" in opt_ml.failure_file.read_text()


def test_hyperparameter_wins_over_environment(make_opt_ml: Callable[..., OptML]) -> None:
    from mlstack.training.config import load_settings
    from mlstack.training.hyperparameters import parse

    env = {"MLFLOW_TRACKING_URI": "http://env:5000", "MLFLOW_EXPERIMENT_NAME": "env-exp"}
    settings = load_settings(parse({"target": "y", "tracking_uri": "http://hp:5000"}), env)
    assert (settings.tracking_uri, settings.experiment_name) == ("http://hp:5000", "env-exp")
    assert settings.tracking_wait_timeout == 20
    assert settings.source_name == "mlstack-training"


def test_unreachable_server_fails_within_the_wait() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    started = time.monotonic()
    with pytest.raises(TrainingError, match=r"did not answer within 2 s \(connection refused\)"):
        wait_for_server(f"http://127.0.0.1:{port}", 2)
    assert time.monotonic() - started < 4


def test_redact_hides_credentials() -> None:
    assert redact("https://user:secret@mlflow.example.com:8443/x") == (
        "https://mlflow.example.com:8443/x"
    )
    assert redact("http://tracking-server:5000") == "http://tracking-server:5000"


@pytest.mark.parametrize("argv", [[], ["serve"], ["train", "extra"]])
def test_entrypoint_wants_train(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "docker run IMAGE train" in capsys.readouterr().err


def test_model_requirements_are_pinned_without_inference() -> None:
    from mlstack.training.model import pinned_requirements

    assert pinned_requirements() == [
        "mlflow==3.17.2",
        "pandas==3.1.1",
        "scikit-learn==1.9.1",
        "skops==0.16.0",
    ]
