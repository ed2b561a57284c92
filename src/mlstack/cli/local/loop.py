"""The local loop: train, hpo, promote, serve, predict, stop-jobs on the local stack.

`mlstack local ...` (the Makefile's local-* targets) calls these with a `Loop`: the stack's
settings (`LocalSettings`) with the command line's overrides. Each prints what it did; a
failure is a JobError whose one line the CLI prints as "local_loop: error: ...".
"""

from __future__ import annotations

import contextlib
import random
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import requests

from mlstack import version as project_version
from mlstack.cli import tuning
from mlstack.cli.channels import ChannelError, data_hyperparameters, reference_payload
from mlstack.cli.local import jobs as local_jobs
from mlstack.cli.local.jobs import JobError, JobResult
from mlstack.cli.settings import LocalSettings
from mlstack.cli.tuning import OBJECTIVE, RANGES
from mlstack.core.waiting import TimedOut, until_ok

PROGRAM = "local_loop"


@dataclass(frozen=True)
class Loop:
    """Where the loop runs: the stack's network and tracking server, the data, the image."""

    settings: LocalSettings
    network: str
    tracking_uri: str  # from this machine
    tracking_uri_in_network: str = "http://tracking-server:5000"  # from the jobs
    jobs_dir: Path = Path(".jobs")
    image: str = field(default_factory=lambda: f"mlstack/training:{project_version()}")


def data_spec(data_dir: Path) -> dict[str, str]:
    """features and target as `mlstack data` recorded them beside the channels."""
    spec = data_hyperparameters(data_dir)
    if not spec:
        raise JobError(f"{data_dir / 'hyperparameters.json'} is missing: run `make data` first")
    return spec


def base_hyperparameters(loop: Loop) -> dict[str, str]:
    """What every job of this stack gets: data spec, tracking, experiment, seed."""
    return {
        **data_spec(loop.settings.data_dir),
        "tracking_uri": loop.tracking_uri_in_network,
        "experiment_name": loop.settings.experiment_name,
        "random-state": str(loop.settings.random_state),
    }


def script_of(loop: Loop) -> local_jobs.Script | None:
    """The user's script (SOURCE_DIR, ENTRY_POINT), or None for the built-in model."""
    return local_jobs.make_script(loop.settings.source_dir, loop.settings.entry_point)


def with_script(
    hyperparameters: dict[str, object], script: local_jobs.Script | None, name: str
) -> dict[str, object]:
    """The job's hyperparameters plus, in script mode, the reserved ones naming the script."""
    return {**hyperparameters, **(script.hyperparameters(name) if script else {})}


def train(loop: Loop) -> None:
    """One job with the settings' hyperparameters, its log streamed."""
    script = script_of(loop)
    client = local_jobs.docker_client()
    name = f"train-{time.strftime('%Y%m%d-%H%M%S')}"
    hyperparameters: dict[str, object] = {
        **base_hyperparameters(loop),
        "n-estimators": loop.settings.n_estimators,
        "min-samples-leaf": loop.settings.min_samples_leaf,
    }
    if loop.settings.registered_model_name:
        hyperparameters["registered-model-name"] = loop.settings.registered_model_name
    hyperparameters = with_script(hyperparameters, script, name)
    job_dir = loop.jobs_dir / name
    local_jobs.write_job_dir(job_dir, loop.settings.data_dir, hyperparameters, script)
    result = local_jobs.run_job(
        client,
        loop.image,
        loop.network,
        job_dir,
        name,
        hyperparameters,
        on_log=print,
        credentials=loop.settings.tracking_credentials(),
    )
    if result.exit_code != 0:
        raise JobError(f"job {name} failed ({result.exit_code}): {result.failure}")
    print(f"job {name} done in {result.seconds:.0f} s; model in {job_dir / 'model'}")


def sample_grid(count: int, seed: int) -> list[dict[str, int]]:
    """Random search over the tuning's ranges (integers, inclusive)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible search, not a secret
    return [
        {name: rng.randint(low, high) for name, (low, high) in RANGES.items()} for _ in range(count)
    ]


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
    backend = LocalJobs(loop, local_jobs.docker_client(), tracking, stamp, jobs, parallel, script)

    def register(parent_id: str, best: tuning.Best) -> None:
        name = loop.settings.model_name
        version_ = mlflow.register_model(model_of_run(best.run_id or ""), name)
        print(f"registered {name} version {version_.version} from run {best.run_id}")

    tags = {"mlstack.entry_point": script.entry_point} if script else {}
    params = tuning.search_space(jobs, parallel)
    print(f"tuning: {jobs} jobs, {parallel} at a time")
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

    def run_jobs(self, parent_run_id: str) -> tuning.Best | None:
        """Run the trials, `parallel` at a time; print progress and the summary; the best."""
        loop = self.loop
        base = {**base_hyperparameters(loop), "parent-run-id": parent_run_id}
        trials = [{**base, **point} for point in sample_grid(self.jobs, loop.settings.random_state)]
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
        return summarise(self.tracking, parent_run_id, results)


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


def experiment_ids_of(tracking) -> list[str]:
    """Every active experiment's id."""
    return [e.experiment_id for e in tracking.search_experiments(max_results=1000)]


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


def summarise(tracking, parent_id: str, results: list[JobResult]) -> tuning.Best | None:
    """Print the summary table, best first; return the best job."""
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
    point = {name: best_result.hyperparameters[name] for name in RANGES}
    return tuning.Best(best_result.name, value, found[0], point)


def promote(loop: Loop) -> None:
    """Alias `champion` the registered version whose run has the lowest objective."""
    from mlflow import MlflowClient

    model_name = loop.settings.model_name
    tracking = MlflowClient(tracking_uri=loop.tracking_uri)
    versions = tracking.search_model_versions(f"name='{model_name}'")
    if not versions:
        raise JobError(f"model {model_name} has no versions: run `make local-hpo` first")
    scored = []
    for version in versions:
        metrics = tracking.get_run(version.run_id).data.metrics if version.run_id else {}
        if OBJECTIVE in metrics:
            scored.append((metrics[OBJECTIVE], int(version.version)))
    if not scored:
        raise JobError(f"no version of {model_name} has a run with {OBJECTIVE}")
    value, best = min(scored)
    tracking.set_registered_model_alias(model_name, "champion", str(best))
    print(f"{model_name}@champion -> version {best} ({OBJECTIVE} {value:.3f})")


def predict(loop: Loop, endpoint: str) -> None:
    """Send the first test row as the reference does and print the prediction."""
    import pandas as pd

    spec = data_spec(loop.settings.data_dir)
    test_csv = loop.settings.data_dir / "test" / "test.csv"
    features = spec["features"].split()
    try:
        payload = reference_payload(test_csv, spec["target"], features)
    except ChannelError as error:
        raise JobError(str(error)) from None
    response = requests.post(
        f"{endpoint}/invocations",
        data=payload,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    if response.status_code != 200:
        raise JobError(f"{endpoint} answered {response.status_code}: {response.text}")
    prediction = response.json()["predictions"][0]
    test = pd.read_csv(test_csv)
    print(f"input:      {test[features].iloc[[0]].to_dict(orient='records')[0]}")
    print(f"prediction: {prediction}")
    print(f"actual:     {test[spec['target']].iloc[0]}")


def wait_ready(endpoint: str, container: str, timeout: float) -> None:
    """Wait until the endpoint's /ping answers 200 (the model is loaded); fail at once when
    its container stops."""

    def alive() -> None:
        if container and not local_jobs.is_running(local_jobs.docker_client(), container):
            raise JobError(f"container {container} stopped: see `docker logs {container}`")

    try:
        until_ok(f"{endpoint}/ping", timeout, 1, alive)
    except TimedOut:
        raise JobError(f"{endpoint}/ping did not answer 200 within {timeout:.0f} s") from None
    print(f"{endpoint} is ready")


def serve(loop: Loop, image: str, container: str, port: int, timeout: float) -> None:
    """Serve models:/MODEL_NAME@champion with the inference image on 127.0.0.1:port, in the
    stack's network (replacing an earlier endpoint of that name); wait until it is ready."""
    from docker.errors import ImageNotFound, NotFound

    client = local_jobs.docker_client()
    with contextlib.suppress(NotFound):
        client.containers.get(container).remove(force=True)
    environment = {
        "MODEL_URI": f"models:/{loop.settings.model_name}@champion",
        "MLFLOW_TRACKING_URI": loop.tracking_uri_in_network,
        **loop.settings.tracking_credentials(),  # environment, never a command line
        **loop.settings.capture_environment(),  # data capture into the stack's MinIO
    }
    try:
        client.containers.run(
            image,
            ["serve"],
            name=container,
            detach=True,
            network=loop.network,
            ports={"8080/tcp": ("127.0.0.1", port)},
            environment=environment,
        )
    except ImageNotFound:
        raise JobError(f"image {image} is missing: run `make build-inference`") from None
    except NotFound:
        raise JobError(f"network {loop.network} does not exist: run `make local-up`") from None
    endpoint = f"http://127.0.0.1:{port}"
    wait_ready(endpoint, container, timeout)
    print(f"Endpoint: {endpoint}/invocations")
    print(f"Data capture: {loop.settings.capture_uri}/{loop.settings.endpoint_name}/")


def remove_endpoint(container: str) -> None:
    """Remove the endpoint's container, if there is one."""
    from docker.errors import NotFound

    with contextlib.suppress(NotFound):
        local_jobs.docker_client().containers.get(container).remove(force=True)


def stop_jobs(network: str) -> None:
    """Stop the stack's running jobs, so their runs end KILLED rather than RUNNING."""
    count = local_jobs.stop_jobs(local_jobs.docker_client(), network)
    if count:
        print(f"stopped {count} training job(s)")
