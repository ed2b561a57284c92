"""mlstack.cli.tuning: the one definition both tunings use, and the one driver's parent run."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlstack.cli import tuning
from mlstack.training.train import metric_line


def test_the_metric_regex_reads_what_the_training_image_prints():
    assert tuning.objective_of(metric_line(tuning.OBJECTIVE, 12.5)) == 12.5
    assert tuning.objective_of(metric_line(tuning.OBJECTIVE, 0.00001)) == 0.00001
    assert tuning.objective_of(metric_line("AE-at-90th-percentile", 3.0)) is None
    assert tuning.METRIC_DEFINITIONS == [{"Name": tuning.OBJECTIVE, "Regex": tuning.METRIC_REGEX}]


def test_the_search_space_is_recorded_the_same_way_for_both():
    params = tuning.search_space(6, 3, **{"instance-type": "local"})
    assert params == {
        "objective": "minimize AE-at-50th-percentile",
        "max-jobs": "6",
        "max-parallel-jobs": "3",
        "range.n-estimators": "50-200",
        "range.min-samples-leaf": "1-10",
        "instance-type": "local",
    }


class Backend:
    """A backend whose jobs are child runs made here, or that fails as told."""

    def __init__(self, client: MlflowClient, experiment: str, outcome: str) -> None:
        self.client, self.experiment, self.outcome = client, experiment, outcome

    def run_jobs(self, parent_run_id: str) -> tuning.Best | None:
        if self.outcome == "interrupted":
            raise KeyboardInterrupt
        if self.outcome == "failed":
            raise tuning.TuningFailed("tuning job x ended Failed: out of capacity")
        if self.outcome == "none":
            return None
        child = self.client.create_run(
            self.experiment, tags={tuning.PARENT_TAG: parent_run_id}, run_name="job-001"
        )
        return tuning.Best("job-001", 4.25, child.info.run_id, {"n-estimators": "77"})


@pytest.fixture
def store(tmp_path: Path) -> tuple[MlflowClient, str]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    name = "tuning-driver"
    experiment = client.create_experiment(name, artifact_location=(tmp_path / "a").as_uri())
    assert tuning.experiment_id(client, name) == experiment
    return client, experiment


def test_the_driver_records_the_best_and_finishes(store):
    client, experiment = store
    params = tuning.search_space(2, 1)
    calls = []
    parent_id, best = tuning.drive(
        client,
        experiment,
        "hpo-test",
        params,
        Backend(client, experiment, "ok"),
        on_best=lambda run_id, found: calls.append((run_id, found.job_name)),
    )
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "hpo-test"
    assert parent.data.tags["mlstack.kind"] == "tuning"
    assert parent.data.tags["mlstack.best_run_id"] == best.run_id
    assert parent.data.metrics[f"best.{tuning.OBJECTIVE}"] == 4.25
    assert parent.data.params["best.n-estimators"] == "77"
    assert parent.data.params["range.n-estimators"] == "50-200"
    assert calls == [(parent_id, "job-001")]


@pytest.mark.parametrize(
    ("outcome", "raised", "status"),
    [
        ("failed", tuning.TuningFailed, "FAILED"),
        ("none", tuning.TuningFailed, "FAILED"),
        ("interrupted", KeyboardInterrupt, "KILLED"),
    ],
)
def test_the_tuning_run_never_stays_running(store, outcome, raised, status):
    client, experiment = store
    with pytest.raises(raised):
        tuning.drive(client, experiment, "t", {}, Backend(client, experiment, outcome))
    [parent] = client.search_runs([experiment])
    assert parent.info.status == status
