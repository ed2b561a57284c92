"""`mlstack local hpo`'s pieces that need no Docker: which model a tuning registers."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from sklearn.dummy import DummyRegressor

from mlstack.cli.local.hpo import model_of_run
from mlstack.cli.local.jobs import JobError
from support.stack import point_mlflow_at


def test_the_model_of_a_run_is_found_in_the_runs_own_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The tuning run's experiment is not MLflow's active one: the best job's logged model is
    found wherever its run is (a script may log to another experiment)."""
    point_mlflow_at(monkeypatch, f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("jobs", artifact_location=(tmp_path / "a").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        model = mlflow.sklearn.log_model(DummyRegressor().fit([[0]], [1]), name="model")
    assert model_of_run(run.info.run_id) == f"models:/{model.model_id}"
    empty = client.create_run(experiment).info.run_id
    with pytest.raises(JobError, match="logged no model"):
        model_of_run(empty)
