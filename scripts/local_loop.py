#!/usr/bin/env python3
"""The local loop's commands: train, hpo, promote, predict, stop-jobs.

The Makefile's local-* targets call these with the stack's settings; each
command prints what it did, and one line "local_loop: error: ..." on failure.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import local_jobs
import requests
from local_jobs import JobError, JobResult

OBJECTIVE = "AE-at-50th-percentile"  # minimised, as in the reference's tuner
N_ESTIMATORS_RANGE = (50, 200)
MIN_SAMPLES_LEAF_RANGE = (1, 10)


def data_hyperparameters(data_dir: Path) -> dict[str, str]:
    """features and target as prepare_data.py recorded them beside the channels."""
    spec = data_dir / "hyperparameters.json"
    if not spec.exists():
        raise JobError(f"{spec} is missing: run `make data` first")
    return json.loads(spec.read_text())


def base_hyperparameters(args: argparse.Namespace) -> dict[str, str]:
    """What every job of this stack gets: data spec, tracking, experiment, seed."""
    return {
        **data_hyperparameters(Path(args.data_dir)),
        "tracking_uri": args.tracking_uri_in_network,
        "experiment_name": args.experiment_name,
        "random-state": str(args.random_state),
    }


def script_of(args: argparse.Namespace) -> local_jobs.Script | None:
    """The user's script (--source-dir, --entry-point), or None for the built-in model."""
    return local_jobs.make_script(args.source_dir, args.entry_point)


def with_script(
    hyperparameters: dict[str, object], script: local_jobs.Script | None, name: str
) -> dict[str, object]:
    """The job's hyperparameters plus, in script mode, the reserved ones naming the script."""
    return {**hyperparameters, **(script.hyperparameters(name) if script else {})}


def command_train(args: argparse.Namespace) -> None:
    """One job with the given hyperparameters, its log streamed."""
    script = script_of(args)
    client = local_jobs.docker_client()
    name = f"train-{time.strftime('%Y%m%d-%H%M%S')}"
    hyperparameters: dict[str, object] = {
        **base_hyperparameters(args),
        "n-estimators": args.n_estimators,
        "min-samples-leaf": args.min_samples_leaf,
    }
    if args.registered_model_name:
        hyperparameters["registered-model-name"] = args.registered_model_name
    hyperparameters = with_script(hyperparameters, script, name)
    job_dir = Path(args.jobs_dir) / name
    local_jobs.write_job_dir(job_dir, Path(args.data_dir), hyperparameters, script)
    result = local_jobs.run_job(
        client, args.image, args.network, job_dir, name, hyperparameters, on_log=print
    )
    if result.exit_code != 0:
        raise JobError(f"job {name} failed ({result.exit_code}): {result.failure}")
    print(f"job {name} done in {result.seconds:.0f} s; model in {job_dir / 'model'}")


def sample_grid(count: int, seed: int) -> list[dict[str, int]]:
    """Random search over the reference tuner's ranges (integers, inclusive)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible search, not a secret
    return [
        {
            "n-estimators": rng.randint(*N_ESTIMATORS_RANGE),
            "min-samples-leaf": rng.randint(*MIN_SAMPLES_LEAF_RANGE),
        }
        for _ in range(count)
    ]


def command_hpo(args: argparse.Namespace) -> None:
    """N jobs, a few at a time, nested under one tuning run; the best one registered."""
    import mlflow
    from mlflow import MlflowClient

    script_of(args)  # checked before anything starts
    client = local_jobs.docker_client()
    tracking = MlflowClient(tracking_uri=args.tracking_uri)
    mlflow.set_tracking_uri(args.tracking_uri)
    experiment = mlflow.set_experiment(args.experiment_name)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = tracking.create_run(
        experiment.experiment_id, run_name=f"hpo-{stamp}", tags={"mlstack.kind": "tuning"}
    )
    parent_id = parent.info.run_id
    print(f"tuning run {parent_id}: {args.jobs} jobs, {args.parallel} at a time")
    try:
        best = tune(args, client, tracking, parent_id, stamp)
    except BaseException:
        # Never leave the tuning run RUNNING: Ctrl-C or an error ends it.
        tracking.set_terminated(parent_id, "KILLED")
        raise
    if best is None:
        tracking.set_terminated(parent_id, "FAILED")
        raise JobError("every tuning job failed; see the table above")
    version = mlflow.register_model(model_of_run(best), args.model_name)
    tracking.set_tag(parent_id, "mlstack.best_run_id", best)
    tracking.set_terminated(parent_id, "FINISHED")
    print(f"registered {args.model_name} version {version.version} from run {best}")


def model_of_run(run_id: str) -> str:
    """The URI of the model a run logged: its MLflow 3 logged model, or, for a script whose
    MLflow 2.x client logs models as run artifacts, runs:/RUN/model."""
    import mlflow

    logged = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run_id}'", output_format="list"
    )
    if logged:
        return f"models:/{logged[0].model_id}"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    if "model" in artifacts:
        return f"runs:/{run_id}/model"
    raise JobError(f"run {run_id} logged no model (no logged model, no model/ artifact)")


def tune(args: argparse.Namespace, client, tracking, parent_id: str, stamp: str) -> str | None:
    """Run the trials under the tuning run; print progress and the summary; return the best."""
    from mlflow.entities import Param

    space = {
        "jobs": args.jobs,
        "parallel": args.parallel,
        "objective": f"minimize {OBJECTIVE}",
        "n-estimators": "{}-{}".format(*N_ESTIMATORS_RANGE),
        "min-samples-leaf": "{}-{}".format(*MIN_SAMPLES_LEAF_RANGE),
    }
    tracking.log_batch(parent_id, params=[Param(k, str(v)) for k, v in space.items()])
    script = script_of(args)
    if script:
        tracking.set_tag(parent_id, "mlstack.entry_point", script.entry_point)
    base = {**base_hyperparameters(args), "parent-run-id": parent_id}
    trials = [{**base, **point} for point in sample_grid(args.jobs, args.random_state)]
    results: list[JobResult] = []
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        pending = set()
        for index, point in enumerate(trials, start=1):
            name = f"hpo-{stamp}-{index:03d}"
            trial = with_script(point, script, name)
            job_dir = Path(args.jobs_dir) / name
            local_jobs.write_job_dir(job_dir, Path(args.data_dir), trial, script)
            pending.add(
                pool.submit(
                    local_jobs.run_job, client, args.image, args.network, job_dir, name, trial
                )
            )
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                results.append(result)
                print_progress(result, len(results), len(trials), tracking, parent_id)
    return summarise(tracking, parent_id, results)


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


def summarise(tracking, parent_id: str, results: list[JobResult]) -> str | None:
    """Print the summary table, best first; log the best to the tuning run; return its run id."""
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
    tracking.log_metric(parent_id, f"best-{OBJECTIVE}", value)
    print(f"\nbest: {best_result.name} with {OBJECTIVE} {value:.3f}")
    return found[0]


def command_promote(args: argparse.Namespace) -> None:
    """Alias `champion` the registered version whose run has the lowest objective."""
    from mlflow import MlflowClient

    tracking = MlflowClient(tracking_uri=args.tracking_uri)
    versions = tracking.search_model_versions(f"name='{args.model_name}'")
    if not versions:
        raise JobError(f"model {args.model_name} has no versions: run `make local-hpo` first")
    scored = []
    for version in versions:
        metrics = tracking.get_run(version.run_id).data.metrics if version.run_id else {}
        if OBJECTIVE in metrics:
            scored.append((metrics[OBJECTIVE], int(version.version)))
    if not scored:
        raise JobError(f"no version of {args.model_name} has a run with {OBJECTIVE}")
    value, best = min(scored)
    tracking.set_registered_model_alias(args.model_name, "champion", str(best))
    print(f"{args.model_name}@champion -> version {best} ({OBJECTIVE} {value:.3f})")


def command_predict(args: argparse.Namespace) -> None:
    """Send the first test row as the reference does and print the prediction."""
    import pandas as pd

    spec = data_hyperparameters(Path(args.data_dir))
    test = pd.read_csv(Path(args.data_dir) / "test" / "test.csv")
    features = spec["features"].split()
    row = test[features].iloc[[0]]
    response = requests.post(
        f"{args.endpoint}/invocations",
        data=row.to_json(orient="split"),  # the reference's payload
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    if response.status_code != 200:
        raise JobError(f"{args.endpoint} answered {response.status_code}: {response.text}")
    prediction = response.json()["predictions"][0]
    print(f"input:      {row.to_dict(orient='records')[0]}")
    print(f"prediction: {prediction}")
    print(f"actual:     {test[spec['target']].iloc[0]}")


def command_wait_ready(args: argparse.Namespace) -> None:
    """Wait until the endpoint's /ping answers 200 (the model is loaded)."""
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{args.endpoint}/ping", timeout=2).status_code == 200:
                print(f"{args.endpoint} is ready")
                return
        except requests.RequestException:
            pass
        if args.container and not local_jobs.is_running(local_jobs.docker_client(), args.container):
            raise JobError(
                f"container {args.container} stopped: see `docker logs {args.container}`"
            )
        time.sleep(1)
    raise JobError(f"{args.endpoint}/ping did not answer 200 within {args.timeout:.0f} s")


def command_stop_jobs(args: argparse.Namespace) -> None:
    """Stop the stack's running jobs, so their runs end KILLED rather than RUNNING."""
    count = local_jobs.stop_jobs(local_jobs.docker_client(), args.network)
    if count:
        print(f"stopped {count} training job(s)")


def parser() -> argparse.ArgumentParser:
    """Command-line interface; the Makefile passes the stack's settings."""
    root = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root.add_argument("--network", default="mlstack_default")
    root.add_argument("--tracking-uri", default="http://127.0.0.1:5000", help="from the host")
    root.add_argument("--tracking-uri-in-network", default="http://tracking-server:5000")
    root.add_argument("--experiment-name", default="diabetes-progression")
    root.add_argument("--model-name", default="diabetes-rf")
    root.add_argument("--data-dir", default="data/diabetes")
    root.add_argument("--jobs-dir", default=".jobs")
    root.add_argument("--image", default="mlstack/training:0.1.0")
    root.add_argument("--random-state", type=int, default=42)
    commands = root.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help=command_train.__doc__)
    train.add_argument("--n-estimators", type=int, default=100)
    train.add_argument("--min-samples-leaf", type=int, default=3)
    train.add_argument("--registered-model-name", default="")
    hpo = commands.add_parser("hpo", help=command_hpo.__doc__)
    hpo.add_argument("--jobs", type=int, default=8)
    hpo.add_argument("--parallel", type=int, default=2)
    for command in (train, hpo):  # script mode: a user's script instead of the built-in model
        command.add_argument("--source-dir", default="", help="the script's directory")
        command.add_argument("--entry-point", default="", help="the script, in --source-dir")
    commands.add_parser("promote", help=command_promote.__doc__)
    predict = commands.add_parser("predict", help=command_predict.__doc__)
    predict.add_argument("--endpoint", default="http://127.0.0.1:8080")
    ready = commands.add_parser("wait-ready", help=command_wait_ready.__doc__)
    ready.add_argument("--endpoint", default="http://127.0.0.1:8080")
    ready.add_argument("--container", default="")
    ready.add_argument("--timeout", type=float, default=120)
    commands.add_parser("stop-jobs", help=command_stop_jobs.__doc__)
    return root


COMMANDS = {
    "train": command_train,
    "hpo": command_hpo,
    "promote": command_promote,
    "predict": command_predict,
    "wait-ready": command_wait_ready,
    "stop-jobs": command_stop_jobs,
}


def main(argv: list[str] | None = None) -> None:
    """Run one command; errors end in one line and exit status 1."""
    args = parser().parse_args(argv)
    if args.command == "hpo" and (args.jobs < 1 or args.parallel < 1):
        sys.exit("local_loop: error: --jobs and --parallel must be at least 1")
    try:
        COMMANDS[args.command](args)
    except (JobError, requests.RequestException) as error:
        sys.exit(f"local_loop: error: {error}")


if __name__ == "__main__":
    main()
