"""The training image's built-in job: a scikit-learn RandomForestRegressor on the CSV files of
the train and test channels, tracked in MLflow.

The image runs it as it runs a user's script (mlstack.training.script_mode, when the job names
no sagemaker_program): hyperparameters as `--name value` arguments (`--help` lists them), the
channels and output directories from the training toolkit's SM_* variables, MLflow through
its fluent API, the job's tracking URI, experiment and run tags set by the image's MLflow
plugin. It prints one `name: value` line per metric (SageMaker's metric definitions read
them), writes the metrics, the feature importances and a plot to SM_OUTPUT_DATA_DIR, saves the
MLflow model to SM_MODEL_DIR (model.tar.gz) and logs it to the run. On a bad input it ends its
run FAILED with the reason as `mlstack.failure_reason`, prints the reason as its last line on
stderr and exits 1: the runner makes that line the job's failure reason.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.training import data, model, train
from mlstack.training.errors import TrainingError
from mlstack.training.hyperparameters import Hyperparameters, parse
from mlstack_mlflow_plugin.job import FAILURE_TAG, FAILURE_TAG_LIMIT
from mlstack_mlflow_plugin.settings import read as read_job

log = logging.getLogger("mlstack.training.builtin")

PLOT_FILE = "predicted_vs_actual.png"
MODEL_NAME = "model"
EXIT_FAILED = 1


@dataclass(frozen=True)
class Paths:
    """The job's data and outputs, where the toolkit's SM_* variables say they are."""

    channels: dict[str, Path]  # SM_CHANNEL_<NAME>
    modes: dict[str, str]  # each channel's TrainingInputMode (SM_INPUT_DATA_CONFIG)
    model_dir: Path  # SM_MODEL_DIR: tarred into model.tar.gz
    output_data_dir: Path  # SM_OUTPUT_DATA_DIR: tarred into output.tar.gz

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Paths:
        """Read from env; SageMaker's /opt/ml paths where a variable is missing."""
        input_dir = Path(env.get("SM_INPUT_DIR") or "/opt/ml/input")
        try:
            config = json.loads(env.get("SM_INPUT_DATA_CONFIG") or "{}")
        except ValueError:
            config = {}
        config = config if isinstance(config, dict) else {}
        return cls(
            channels={
                name: Path(env.get(f"SM_CHANNEL_{name.upper()}") or input_dir / "data" / name)
                for name in data.CHANNELS
            },
            modes={
                name: str((config.get(name) or {}).get("TrainingInputMode", "File"))
                for name in data.CHANNELS
            },
            model_dir=Path(env.get("SM_MODEL_DIR") or "/opt/ml/model"),
            output_data_dir=Path(env.get("SM_OUTPUT_DATA_DIR") or "/opt/ml/output/data"),
        )


def hyperparameter_params(hp: Hyperparameters) -> dict[str, Any]:
    """The run's params, named as the reference names them."""
    params: dict[str, Any] = {
        "n-estimators": hp.n_estimators,
        "min-samples-leaf": hp.min_samples_leaf,
        "target": hp.target,
    }
    if hp.features:
        params["features"] = " ".join(hp.features)
    if hp.random_state is not None:
        params["random-state"] = hp.random_state
    return params


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type when it has none), at most 500 chars."""
    lines = str(error).strip().splitlines()
    return lines[0][:500] if lines else type(error).__name__


def start_run(job_name: str) -> None:
    """The job's run, named after the job; the plugin gives it the job's tags."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        run = mlflow.start_run(run_name=job_name or None)
    except MlflowException as error:
        raise TrainingError(f"MLflow refused to start the run: {first_line(error)}") from None
    log.info("MLflow run %s (%s)", run.info.run_id, run.info.run_name)


def train_job(hp: Hyperparameters, paths: Paths, tracked: bool) -> dict[str, float]:
    """Read the channels, train, evaluate and save the model; log it all to the active run
    when tracked."""
    import mlflow.sklearn

    if tracked:
        mlflow.log_params(hyperparameter_params(hp))
    train_frame = data.read_channel(paths.channels["train"], "train", paths.modes["train"])
    test_frame = data.read_channel(paths.channels["test"], "test", paths.modes["test"])
    features = data.feature_columns(train_frame, hp.features, hp.target)
    train_set = data.select(train_frame, features, hp.target, "train")
    test_set = data.select(test_frame, features, hp.target, "test")
    extra: dict[str, Any] = {"train-rows": len(train_set.target), "test-rows": len(test_set.target)}
    if not hp.features:
        extra["features"] = " ".join(features)
    if tracked:
        mlflow.log_params(extra)

    log.info(
        "training RandomForestRegressor (n-estimators=%d, min-samples-leaf=%d) on %d rows, "
        "features: %s; target: %s",
        hp.n_estimators,
        hp.min_samples_leaf,
        len(train_set.target),
        " ".join(features),
        hp.target,
    )
    forest = train.fit(hp, train_set)
    predictions = forest.predict(test_set.features)
    metrics = train.evaluate(predictions, test_set)
    for name, value in metrics.items():
        log.info(train.metric_line(name, value))

    out = paths.output_data_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    importances = dict(zip(features, map(float, forest.feature_importances_), strict=True))
    (out / "feature_importances.json").write_text(json.dumps(importances, indent=2) + "\n")
    plot = train.plot_predictions(predictions, test_set, hp.target, metrics, out / PLOT_FILE)

    args = model.model_args(forest, train_set.features)
    model.save(forest, paths.model_dir, args)
    log.info("saved the MLflow model to %s", paths.model_dir)
    if not tracked:
        if hp.registered_model_name:
            log.warning("registered-model-name is ignored: there is no tracking URI to register at")
        return metrics
    mlflow.log_metrics(metrics)
    mlflow.log_artifact(str(plot), "plots")
    mlflow.log_dict(importances, "feature_importances.json")
    # The saved copy's requirements, so MLflow does not infer them a second time.
    info = mlflow.sklearn.log_model(
        forest,
        name=MODEL_NAME,
        registered_model_name=hp.registered_model_name,
        pip_requirements=str(paths.model_dir / "requirements.txt"),
        **args,
    )
    log.info("logged model %s (%s)", info.model_id, info.model_uri)
    return metrics


def fail(reason: str, tracked: bool) -> int:
    """End the active run FAILED with the reason as its tag; print the reason as the last
    line on stderr, where the runner reads it; return the exit code."""
    reason = " ".join(line.strip() for line in reason.splitlines() if line.strip())
    if tracked:
        import mlflow

        try:
            if mlflow.active_run() is not None:
                try:
                    mlflow.set_tag(FAILURE_TAG, reason[:FAILURE_TAG_LIMIT])
                finally:
                    mlflow.end_run("FAILED")
        except Exception as error:  # the runner ends the job's runs too
            log.warning("could not end the MLflow run FAILED: %s", first_line(error))
    print(reason, file=sys.stderr, flush=True)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the job (argv: the hyperparameters; env: os.environ by default); return the exit
    code."""
    env = os.environ if env is None else env
    # Read before MLflow is imported: the image's MLflow plugin points a client that has no
    # tracking URI at the job's own file store, and with none this job logs to no MLflow.
    tracked = bool(env.get("MLFLOW_TRACKING_URI", "").strip())
    try:
        hp = parse(sys.argv[1:] if argv is None else argv)
        paths = Paths.from_env(env)
        model.check_model_dir(paths.model_dir)
        if tracked:
            start_run(read_job(env).job_name)
        else:
            log.info(
                "no tracking URI (tracking_uri hyperparameter or MLFLOW_TRACKING_URI): "
                "training without MLflow"
            )
        train_job(hp, paths, tracked)
        if tracked:
            import mlflow

            mlflow.end_run()
    except TrainingError as error:
        return fail(str(error), tracked)
    except Exception as error:
        log.exception("unexpected error")
        return fail(f"unexpected error: {type(error).__name__}: {first_line(error)}", tracked)
    log.info("training finished")
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: the run, the model and the outputs are written; the interpreter's own
    # shutdown (its modules' exit hooks) would add most of a second to every job.
    os._exit(code)
