"""One training job, start to end, with the SageMaker failure contract.

On failure: the reason goes to /opt/ml/output/failure (SageMaker shows its first 1024
characters), the MLflow run (if one started) ends FAILED, or KILLED on SIGTERM, and the
process exits non-zero.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mlstack.training import data, model, train
from mlstack.training.config import Settings, load_settings
from mlstack.training.errors import Terminated, TrainingError
from mlstack.training.hyperparameters import Hyperparameters
from mlstack.training.hyperparameters import load as load_hyperparameters
from mlstack.training.paths import OptML
from mlstack.training.tracking import MlflowTracking, NoTracking

log = logging.getLogger(__name__)

PLOT_FILE = "predicted_vs_actual.png"
EXIT_FAILED = 1
# How long a failing job keeps trying to mark its MLflow run, so a dead server cannot hold
# it up (SageMaker sends SIGKILL 120 s after SIGTERM).
FAIL_WAIT_S = 15.0
KILL_WAIT_S = 10.0


@contextmanager
def signals_raise() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into Terminated in the main thread.

    The process is PID 1 in its container, where the kernel drops signals that have no
    handler: without one, `docker stop` and StopTrainingJob would wait for SIGKILL.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def make_tracker(settings: Settings) -> NoTracking:
    """MLflow tracking when a tracking URI is configured, else none."""
    if settings.tracking_uri:
        return MlflowTracking(
            settings.tracking_uri, settings.experiment_name, settings.tracking_wait_timeout
        )
    return NoTracking()


def run_tags(settings: Settings, hp: Hyperparameters) -> dict[str, str]:
    """Tags that tie the run to the job that made it (and to its tuning run, if any)."""
    tags = {
        "mlflow.source.type": "JOB",
        "mlflow.source.name": settings.source_name,
        "mlstack.image": "training",
    }
    if settings.job_name:
        tags["sagemaker.training_job_name"] = settings.job_name
    if hp.parent_run_id:
        # MLflow's UI nests a run under the run this tag names.
        tags["mlflow.parentRunId"] = hp.parent_run_id
    return tags


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


def train_and_log(opt_ml: OptML, hp: Hyperparameters, tracker: NoTracking) -> dict[str, float]:
    """Read the channels, train, evaluate, save the model and log everything."""
    tracker.log_params(hyperparameter_params(hp))
    train_frame = data.read_channel(opt_ml, "train")
    test_frame = data.read_channel(opt_ml, "test")
    features = data.feature_columns(train_frame, hp.features, hp.target)
    train_set = data.select(train_frame, features, hp.target, "train")
    test_set = data.select(test_frame, features, hp.target, "test")
    extra: dict[str, Any] = {"train-rows": len(train_set.target), "test-rows": len(test_set.target)}
    if not hp.features:
        extra["features"] = " ".join(features)
    tracker.log_params(extra)

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
    tracker.log_metrics(metrics)

    out = opt_ml.output_data_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    importances = dict(zip(features, map(float, forest.feature_importances_), strict=True))
    (out / "feature_importances.json").write_text(json.dumps(importances, indent=2) + "\n")
    plot = train.plot_predictions(predictions, test_set, hp.target, metrics, out / PLOT_FILE)
    tracker.log_artifact(plot, "plots")
    tracker.log_dict(importances, "feature_importances.json")

    args = model.model_args(forest, train_set.features)
    model.save(forest, opt_ml.model_dir, args)
    log.info("saved the MLflow model to %s", opt_ml.model_dir)
    if hp.registered_model_name and not tracker.enabled:
        log.warning("registered-model-name is ignored: there is no tracking URI to register at")
    tracker.log_model(forest, opt_ml.model_dir, hp.registered_model_name, **args)
    tracker.log_baseline(
        train_frame, features, hp.target, forest.predict, str(opt_ml.channel("train"))
    )
    return metrics


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:500] if lines else type(error).__name__


def _fail(opt_ml: OptML, tracker: NoTracking, status: str, reason: str, wait: float) -> None:
    """Record the failure where SageMaker and MLflow show it; ignore further signals."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        if threading.current_thread() is threading.main_thread():
            signal.signal(sig, signal.SIG_IGN)
    log.error("training failed: %s", reason)
    try:
        opt_ml.write_failure(reason)
    except OSError as error:
        log.error("could not write %s: %s", opt_ml.failure_file, error)
    tracker.fail(status, reason, wait)


def run_job(opt_ml: OptML, env: Mapping[str, str] | None = None) -> int:
    """Run the job (settings from os.environ, or env); return the exit code (0 on success)."""
    tracker = NoTracking()
    with signals_raise():
        try:
            hp = load_hyperparameters(opt_ml.hyperparameters_file)
            settings = load_settings(hp, env)
            model.check_model_dir(opt_ml.model_dir)
            tracker = make_tracker(settings)
            tracker.start(settings.job_name, run_tags(settings, hp))
            train_and_log(opt_ml, hp, tracker)
            tracker.finish()
        except Terminated as stop:
            name = signal.Signals(stop.args[0]).name
            _fail(
                opt_ml,
                tracker,
                "KILLED",
                f"stopped by {name} before training finished",
                KILL_WAIT_S,
            )
            return 128 + stop.args[0]
        except TrainingError as error:
            _fail(opt_ml, tracker, "FAILED", str(error), FAIL_WAIT_S)
            return EXIT_FAILED
        except Exception as error:
            log.exception("unexpected error")
            reason = f"unexpected error: {type(error).__name__}: {_first_line(error)}"
            _fail(opt_ml, tracker, "FAILED", reason, FAIL_WAIT_S)
            return EXIT_FAILED
    log.info("training job succeeded")
    return 0
