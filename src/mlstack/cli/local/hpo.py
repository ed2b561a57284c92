"""`mlstack local hpo`: the tuning on the local stack. Jobs of the training image, a few at
a time, over the tuning's ranges (`mlstack.cli.tuning`, shared with SageMaker's), each nested
under one parent run; the best one registered as MODEL_NAME.

The search is random: a new seed for each tuning, printed (and logged as the run's `seed`
param), so a second tuning explores new points; TUNING_SEED repeats one.
"""

from __future__ import annotations

import random
import secrets
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

from mlstack.cli import docker_engine, tuning
from mlstack.cli.links import run_url
from mlstack.cli.local import jobs as local_jobs
from mlstack.cli.local.jobs import JobError, JobResult
from mlstack.cli.local.loop import (
    Loop,
    base_hyperparameters,
    experiment_ids_of,
    script_of,
    with_script,
)
from mlstack.cli.tuning import OBJECTIVE, RANGES

SEEDS = 1_000_000  # seeds are drawn below this: short enough to retype


def sample_grid(count: int, seed: int) -> list[dict[str, int]]:
    """Random search over the tuning's ranges (integers, inclusive)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible search, not a secret
    return [
        {name: rng.randint(low, high) for name, (low, high) in RANGES.items()} for _ in range(count)
    ]


def search_seed(given: int | None) -> int:
    """TUNING_SEED when set (the same search again), else a new one for every tuning."""
    if given is not None:
        return given
    return secrets.randbelow(SEEDS)


def hpo(loop: Loop, jobs: int, parallel: int) -> None:
    """N jobs, a few at a time, nested under one tuning run; the best one registered."""
    import mlflow
    from mlflow import MlflowClient

    if jobs < 1 or parallel < 1:
        raise JobError("--jobs and --parallel must be at least 1")
    script = script_of(loop)  # checked before anything starts
    tracking = MlflowClient(tracking_uri=loop.tracking_uri)
    mlflow.set_tracking_uri(loop.tracking_uri)
    experiment = tuning.experiment_id(tracking, loop.settings.experiment_name)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    seed = search_seed(loop.settings.tuning_seed)
    client = docker_engine.client()
    backend = LocalJobs(loop, client, tracking, stamp, jobs, parallel, script, seed)

    def register(parent_id: str, best: tuning.Best) -> None:
        name = loop.settings.model_name
        version_ = mlflow.register_model(model_of_run(best.run_id or ""), name)
        print(f"registered {name} version {version_.version} from run {best.run_id}")

    tags = {"mlstack.entry_point": script.entry_point} if script else {}
    params = tuning.search_space(jobs, parallel, seed=seed)
    print(
        f"tuning: {jobs} jobs, {parallel} at a time, seed {seed} "
        f"(TUNING_SEED={seed} repeats this search)"
    )
    try:
        tuning.drive(tracking, experiment, f"hpo-{stamp}", params, backend, tags, register)
    except tuning.TuningFailed as error:
        raise JobError(f"{error}: see the table above") from None


def model_of_run(run_id: str) -> str:
    """The URI of the model a run logged: its MLflow 3 logged model, or, for a script whose
    MLflow 2.x client logs models as run artifacts, runs:/RUN/model."""
    import mlflow

    # In the run's own experiment (a script may log to another than the tuning's).
    experiment = mlflow.MlflowClient().get_run(run_id).info.experiment_id
    logged = mlflow.search_logged_models(
        experiment_ids=[experiment],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    if logged:
        return f"models:/{logged[0].model_id}"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    if "model" in artifacts:
        return f"runs:/{run_id}/model"
    raise JobError(f"run {run_id} logged no model (no logged model, no model/ artifact)")


@dataclass
class LocalJobs:
    """The tuning's backend on the local stack: containers of the training image."""

    loop: Loop
    client: object
    tracking: object
    stamp: str
    jobs: int
    parallel: int
    script: local_jobs.Script | None
    seed: int

    def run_jobs(self, parent_run_id: str) -> tuning.Best | None:
        """Run the trials, `parallel` at a time; print progress and the summary; the best."""
        loop = self.loop
        base = {**base_hyperparameters(loop), "parent-run-id": parent_run_id}
        trials = [{**base, **point} for point in sample_grid(self.jobs, self.seed)]
        credentials = loop.settings.tracking_credentials()
        results: list[JobResult] = []
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            pending = set()
            for index, point in enumerate(trials, start=1):
                name = f"hpo-{self.stamp}-{index:03d}"
                trial = with_script(point, self.script, name)
                job_dir = loop.jobs_dir / name
                local_jobs.write_job_dir(job_dir, loop.settings.data_dir, trial, self.script)
                pending.add(
                    pool.submit(
                        local_jobs.run_job,
                        self.client,
                        loop.image,
                        loop.network,
                        job_dir,
                        name,
                        trial,
                        credentials=credentials,
                    )
                )
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()
                    results.append(result)
                    print_progress(result, len(results), len(trials), self.tracking, parent_run_id)
        return summarise(self.tracking, parent_run_id, results, loop.tracking_uri)


def child_objective(tracking, parent_id: str, job_name: str) -> tuple[str, float] | None:
    """(run id, objective) of the child run a job made, if it finished.

    Both the built-in job and the training image's MLflow plugin (for a user's script) tag
    the run with the job's name; a script may log to another experiment than the tuning's."""
    runs = tracking.search_runs(
        experiment_ids_of(tracking),
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent_id}' and "
            f"tags.`sagemaker.training_job_name` = '{job_name}'"
        ),
    )
    for run in runs:
        if run.info.status == "FINISHED" and OBJECTIVE in run.data.metrics:
            return run.info.run_id, run.data.metrics[OBJECTIVE]
    return None


def print_progress(result: JobResult, done: int, total: int, tracking, parent_id: str) -> None:
    """One line per finished job: its parameters and its objective (or why it failed)."""
    found = child_objective(tracking, parent_id, result.name) if result.exit_code == 0 else None
    outcome = f"{OBJECTIVE}={found[1]:.3f}" if found else f"FAILED: {result.failure}"
    print(
        f"[{done}/{total}] {result.name}  n-estimators={result.hyperparameters['n-estimators']:>3}"
        f"  min-samples-leaf={result.hyperparameters['min-samples-leaf']:>2}  {outcome}"
        f"  ({result.seconds:.0f} s)",
        flush=True,
    )


def summarise(
    tracking, parent_id: str, results: list[JobResult], tracking_uri: str
) -> tuning.Best | None:
    """Print the summary table, best first, and the best run's link; return the best job."""
    rows = []
    for result in results:
        found = child_objective(tracking, parent_id, result.name)
        rows.append((found[1] if found else float("inf"), result, found))
    rows.sort(key=lambda row: row[0])
    print(f"\n{'job':28s} {'n-estimators':>12s} {'min-samples-leaf':>16s} {OBJECTIVE:>22s}")
    for value, result, found in rows:
        shown = f"{value:.3f}" if found else "failed"
        print(
            f"{result.name:28s} {result.hyperparameters['n-estimators']:>12s}"
            f" {result.hyperparameters['min-samples-leaf']:>16s} {shown:>22s}"
        )
    value, best_result, found = rows[0]
    if not found:
        return None
    print(f"\nbest: {best_result.name} with {OBJECTIVE} {value:.3f}")
    print(f"best run: {run_url(tracking_uri, tracking.get_run(found[0]).info)}")
    point = {name: best_result.hyperparameters[name] for name in RANGES}
    return tuning.Best(best_result.name, value, found[0], point)
