"""The local loop's ground: where it runs (`Loop`), what every job gets, one training job
(`mlstack local train`), and the run links the user can open.

`mlstack local ...` (the Makefile's local-* targets) builds a `Loop` from the stack's
settings (`LocalSettings`) and the command line's options; the tuning is in `hpo.py`, the
champion in `promote.py`, the endpoint in `endpoint.py`. Each prints what it did; a failure
is a JobError, one line "mlstack: error: ...".

The jobs reach the tracking server inside the stack's network (http://tracking-server:5000),
so MLflow's client in them prints its `View run` links with that address; the loop prints
them with the one this machine opens (http://127.0.0.1:MLFLOW_PORT).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from mlstack import version as project_version
from mlstack.cli import docker_engine
from mlstack.cli.channels import data_hyperparameters
from mlstack.cli.links import public, run_url
from mlstack.cli.local import jobs as local_jobs
from mlstack.cli.local.jobs import JobError
from mlstack.cli.settings import LocalSettings
from mlstack.cli.tuning import JOB_TAG

HEALTH_TIMEOUT_S = 5  # the tracking server's /health answers at once when it is up


@dataclass(frozen=True)
class Loop:
    """Where the loop runs: the stack's network and tracking server, the data, the image."""

    settings: LocalSettings
    network: str
    tracking_uri: str  # from this machine
    tracking_uri_in_network: str = "http://tracking-server:5000"  # from the jobs
    jobs_dir: Path = Path(".jobs")
    image: str = field(default_factory=lambda: f"mlstack/training:{project_version()}")


def require_tracking_server(loop: Loop) -> None:
    """One line when nothing answers at the tracking URI, before MLflow's client would retry
    a refused connection for minutes."""
    import requests

    uri = loop.tracking_uri.rstrip("/")
    if not uri.startswith(("http://", "https://")):
        return  # a file or database store: nothing to reach
    try:
        requests.get(f"{uri}/health", timeout=HEALTH_TIMEOUT_S)
    except requests.RequestException:
        port = loop.settings.mlflow_port
        variable = f" (MLFLOW_PORT={port})" if uri == loop.settings.tracking_uri else ""
        raise JobError(
            f"nothing answers at {uri}{variable}: start the stack first (make local-up)"
        ) from None


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


def experiment_ids_of(tracking) -> list[str]:
    """Every active experiment's id."""
    return [e.experiment_id for e in tracking.search_experiments(max_results=1000)]


def job_run_url(loop: Loop, job_name: str) -> str | None:
    """The UI's page of the run a job made (the built-in job and the training image's MLflow
    plugin tag it with the job's name), at the address this machine opens."""
    from mlflow import MlflowClient

    tracking = MlflowClient(tracking_uri=loop.tracking_uri)
    runs = tracking.search_runs(
        experiment_ids_of(tracking),
        filter_string=f"tags.`{JOB_TAG}` = '{job_name}'",
        max_results=1,
    )
    return run_url(loop.tracking_uri, runs[0].info) if runs else None


def train(loop: Loop) -> None:
    """One job with the settings' hyperparameters, its log streamed (links the user opens)."""
    script = script_of(loop)
    client = docker_engine.client()
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
        on_log=lambda line: print(public(line, loop.tracking_uri_in_network, loop.tracking_uri)),
        credentials=loop.settings.tracking_credentials(),
    )
    if result.exit_code != 0:
        raise JobError(f"job {name} failed ({result.exit_code}): {result.failure}")
    print(f"job {name} done in {result.seconds:.0f} s; model in {job_dir / 'model'}")
    link = job_run_url(loop, name)
    if link:
        print(f"run: {link}")


def stop_jobs(network: str) -> None:
    """Stop the stack's running jobs, so their runs end KILLED rather than RUNNING."""
    count = local_jobs.stop_jobs(docker_engine.client(), network)
    if count:
        print(f"stopped {count} training job(s)")
