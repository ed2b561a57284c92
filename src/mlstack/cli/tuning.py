"""The tuning: one definition (objective, metric regex, ranges, defaults) and one driver for
both backends, the local stack's jobs (`mlstack local hpo`) and SageMaker's tuning job
(`mlstack aws tune`). They differ only in how the training jobs run.

The reference's tuner: n-estimators 50-200 and min-samples-leaf 1-10 (integers), minimising
the median absolute error that the training image logs as `AE-at-50th-percentile: VALUE`.
The driver opens one MLflow parent run with the search space as params, hands its id to
every training job as the hyperparameter parent-run-id (so each job's run is nested under
it from the start), lets the backend run the jobs, then records the best and ends the run
FINISHED, FAILED, or KILLED when interrupted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

OBJECTIVE = "AE-at-50th-percentile"  # minimised, as in the reference's tuner
OBJECTIVE_TYPE = "Minimize"
# The training image prints each metric as `name: value` in fixed-point notation; SageMaker
# reads the objective from the job's log with this (MetricDefinitions).
METRIC_REGEX = r"AE-at-50th-percentile: ([0-9.]+).*$"
METRIC_DEFINITIONS = [{"Name": OBJECTIVE, "Regex": METRIC_REGEX}]
RANGES: dict[str, tuple[int, int]] = {"n-estimators": (50, 200), "min-samples-leaf": (1, 10)}
DEFAULT_MAX_JOBS = 8
DEFAULT_MAX_PARALLEL_JOBS = 2
PARENT_TAG = "mlflow.parentRunId"
JOB_TAG = "sagemaker.training_job_name"


def objective_of(log_line: str) -> float | None:
    """The objective a training job's log line reports, read as SageMaker reads it."""
    found = re.search(METRIC_REGEX, log_line)
    return float(found.group(1)) if found else None


def search_space(max_jobs: int, max_parallel_jobs: int, **extra: object) -> dict[str, str]:
    """The params every tuning run records: objective, limits, ranges (and the backend's)."""
    params: dict[str, object] = {
        "objective": f"{OBJECTIVE_TYPE.lower()} {OBJECTIVE}",
        "max-jobs": max_jobs,
        "max-parallel-jobs": max_parallel_jobs,
        **{f"range.{name}": f"{low}-{high}" for name, (low, high) in RANGES.items()},
        **extra,
    }
    return {name: str(value) for name, value in params.items()}


@dataclass(frozen=True)
class Best:
    """The best training job of a tuning: its name, objective and (when known) MLflow run."""

    job_name: str
    objective: float | None
    run_id: str | None = None
    hyperparameters: Mapping[str, str] | None = None


class Backend(Protocol):
    """How the training jobs of one tuning run: locally in containers, or on SageMaker."""

    def run_jobs(self, parent_run_id: str) -> Best | None:
        """Run every job, each nested under parent_run_id; return the best, None if all failed."""
        ...


class TuningFailed(Exception):
    """No job of the tuning produced the objective; the message says where to look."""


def drive(
    tracking: Any,
    experiment_id: str,
    run_name: str,
    params: Mapping[str, str],
    backend: Backend,
    tags: Mapping[str, str] | None = None,
    on_best: Callable[[str, Best], None] | None = None,
) -> tuple[str, Best]:
    """The one driver: parent run, jobs through the backend, best recorded; (run id, best)."""
    from mlflow.entities import Param

    run = tracking.create_run(
        experiment_id, run_name=run_name, tags={"mlstack.kind": "tuning", **(tags or {})}
    )
    parent_id = run.info.run_id
    tracking.log_batch(parent_id, params=[Param(k, v) for k, v in params.items()])
    try:
        best = backend.run_jobs(parent_id)
    except TuningFailed:
        tracking.set_terminated(parent_id, "FAILED")
        raise
    except BaseException:
        # Never leave the tuning run RUNNING: Ctrl-C or an error ends it.
        tracking.set_terminated(parent_id, "KILLED")
        raise
    if best is None:
        tracking.set_terminated(parent_id, "FAILED")
        raise TuningFailed("every tuning job failed; see the jobs above")
    if best.objective is not None:
        tracking.log_metric(parent_id, f"best.{OBJECTIVE}", best.objective)
    tracking.set_tag(parent_id, "mlstack.best_job", best.job_name)
    if best.run_id:
        tracking.set_tag(parent_id, "mlstack.best_run_id", best.run_id)
    for name, value in (best.hyperparameters or {}).items():
        tracking.log_param(parent_id, f"best.{name}", value)
    if on_best is not None:
        on_best(parent_id, best)
    tracking.set_terminated(parent_id, "FINISHED")
    return parent_id, best


def experiment_id(tracking: Any, name: str) -> str:
    """The experiment's id, created when missing."""
    found = tracking.get_experiment_by_name(name)
    return found.experiment_id if found else tracking.create_experiment(name)
