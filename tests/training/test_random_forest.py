"""The built-in script (mlstack/training/builtin/random_forest.py) on the host, without Docker,
as the image's runner runs it: the toolkit's command line and SM_* variables, the job's MLflow
variables as the runner exports them, the image's MLflow plugin tagging its run. Outputs,
the MLflow run, failures in one line.

Tracking goes to a SQLite store here; the image's suite (test_image.py) runs the same job,
through the runner, against the tracking-server image.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.tracking.context import registry

from mlstack.training import train
from mlstack.training.builtin import random_forest
from mlstack.training.paths import OptML
from mlstack.training.script_mode import ScriptJob
from mlstack.training.tracking import FAILURE_TAG
from mlstack_mlflow_plugin.provider import JobRunContext
from support.metrics import assert_metrics_match
from support.stack import point_mlflow_at

from .helpers import FEATURES, METRIC_REGEXES, TARGET, job_env, toolkit_argv


@dataclass(frozen=True)
class Ended:
    """How the script ended: its exit code and its last line on stderr."""

    code: int
    reason: str


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


@pytest.fixture
def run_script(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Ended]:
    """Run the script over an /opt/ml tree as the runner runs it, in this process."""
    providers = registry._run_context_provider_registry
    # The plugin as its entry point registers it in the image (not installed on the host).
    monkeypatch.setattr(providers, "_registry", [*providers._registry, JobRunContext()])
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # the plugin installs its own
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    point_mlflow_at(monkeypatch, None)

    def run(opt_ml: OptML, env: dict[str, str] | None = None) -> Ended:
        hyperparameters = json.loads(opt_ml.hyperparameters_file.read_text())
        variables = {**(env or {}), **job_env(opt_ml, hyperparameters)}
        # What the runner exports: the job's MLflow variables, the hyperparameters winning.
        variables.update(ScriptJob(opt_ml, variables).tracking_env(variables))
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        code = random_forest.main(toolkit_argv(hyperparameters))
        err = capsys.readouterr().err.strip().splitlines()
        return Ended(code, err[-1] if err else "")

    return run


@pytest.fixture
def tracked_job(
    make_opt_ml: Callable[..., OptML],
    run_script: Callable[..., Ended],
    sqlite_uri: str,
    experiment: str,
) -> Callable[..., tuple[OptML, Ended]]:
    """Run the script with these hyperparameters (in the experiment) and environment,
    tracked in the SQLite store."""

    def run(hyperparameters: dict[str, str], **env: str) -> tuple[OptML, Ended]:
        opt_ml = make_opt_ml({"experiment_name": experiment, **hyperparameters})
        return opt_ml, run_script(opt_ml, {"MLFLOW_TRACKING_URI": sqlite_uri, **env})

    return run


def only_run(uri: str, experiment: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_trains_without_tracking(
    make_opt_ml: Callable[..., OptML],
    run_script: Callable[..., Ended],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    opt_ml = make_opt_ml()
    assert run_script(opt_ml) == Ended(0, "")
    assert "training without MLflow" in caplog.text
    assert not opt_ml.failure_file.exists()
    for name, pattern in METRIC_REGEXES.items():
        assert any(re.search(pattern, line) for line in caplog.messages), name
    metrics = json.loads((opt_ml.output_data_dir / "metrics.json").read_text())
    assert set(metrics) == set(METRIC_REGEXES)
    assert_metrics_match(metrics, opt_ml.model_dir, opt_ml.channel("test") / "test.csv")
    plot = opt_ml.output_data_dir / random_forest.PLOT_FILE
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_tracked_run(
    tracked_job: Callable[..., tuple[OptML, Ended]],
    sqlite_uri: str,
    experiment: str,
    tmp_path: Path,
) -> None:
    hyperparameters = {"n_estimators": "5", "target": TARGET}
    hyperparameters["experiment_name"] = json.dumps(experiment)  # as the SDK encodes it
    opt_ml, ended = tracked_job(
        hyperparameters, TRAINING_JOB_NAME="job-abc", AWS_REGION="eu-west-1"
    )
    assert ended.code == 0

    run = only_run(sqlite_uri, experiment)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "job-abc"
    assert run.data.tags["sagemaker.training_job_name"] == "job-abc"
    assert "eu-west-1.console.aws.amazon.com" in run.data.tags["mlflow.source.name"]
    assert run.data.tags["mlstack.entry_point"] == "random_forest.py"
    assert run.data.params["n-estimators"] == "5"
    assert run.data.params["features"] == FEATURES  # every column but the target
    assert set(run.data.metrics) == set(METRIC_REGEXES)
    test_csv = opt_ml.channel("test") / "test.csv"
    assert_metrics_match(run.data.metrics, f"runs:/{run.info.run_id}/model", test_csv)
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
    # The monitoring baseline, recorded by the image's MLflow plugin as for any script: the
    # train channel as the run's dataset input, its statistics, and a reference sample with
    # the model's predictions (`mlstack monitor` reads them).
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
    tracked_job: Callable[..., tuple[OptML, Ended]], sqlite_uri: str, experiment: str
) -> None:
    opt_ml, ended = tracked_job({"target": TARGET, "features": "age wingspan"})
    assert ended.code == 1
    assert ended.reason.startswith("unknown feature wingspan: not in the train data")
    run = only_run(sqlite_uri, experiment)
    assert run.info.status == "FAILED"
    assert run.data.tags[FAILURE_TAG] == ended.reason
    assert not any(opt_ml.model_dir.iterdir())


def test_bad_hyperparameter_fails_before_any_run(
    tracked_job: Callable[..., tuple[OptML, Ended]], sqlite_uri: str, experiment: str
) -> None:
    _, ended = tracked_job({"target": TARGET, "n-estimators": "many"})
    assert ended.code == 1
    assert "n-estimators must be a whole number" in ended.reason
    client = MlflowClient(sqlite_uri)
    assert client.search_runs([client.get_experiment_by_name(experiment).experiment_id]) == []


def test_unexpected_errors_are_reported_in_one_line(
    make_opt_ml: Callable[..., OptML],
    run_script: Callable[..., Ended],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object) -> None:
        raise ValueError("Input X contains infinity\nsecond line")

    monkeypatch.setattr(train, "fit", broken)
    ended = run_script(make_opt_ml())
    assert ended == Ended(1, "unexpected error: ValueError: Input X contains infinity")


def test_model_dir_must_be_empty(
    make_opt_ml: Callable[..., OptML], run_script: Callable[..., Ended]
) -> None:
    opt_ml = make_opt_ml()
    (opt_ml.model_dir / "old.txt").write_text("left over")
    ended = run_script(opt_ml)
    assert ended.code == 1
    assert "is not empty" in ended.reason


def test_pipe_mode_is_refused(
    make_opt_ml: Callable[..., OptML], run_script: Callable[..., Ended]
) -> None:
    opt_ml = make_opt_ml()
    config = {"train": {"TrainingInputMode": "Pipe"}, "test": {"TrainingInputMode": "File"}}
    opt_ml.input_data_config_file.write_text(json.dumps(config))
    ended = run_script(opt_ml)
    assert ended.code == 1
    assert re.search(r"Pipe input mode.*use File or FastFile", ended.reason)
