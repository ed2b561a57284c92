"""MLflow tracking of the job, or none when no tracking URI is configured.

A SageMaker job without MLflow is valid: NoTracking keeps the same calls as no-ops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from mlstack.core.waiting import attempts
from mlstack.training.errors import TrainingError
from mlstack_mlflow_plugin.job import FAILURE_TAG, FAILURE_TAG_LIMIT

log = logging.getLogger(__name__)

MODEL_NAME = "model"


def redact(uri: str) -> str:
    """The URI without any user:password@ part, for messages and logs."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _reason(error: requests.RequestException) -> str:
    text = str(error)
    if isinstance(error, requests.Timeout):
        return "no answer"
    if "NameResolution" in text or "not known" in text or "name resolution" in text:
        return "host name not found"
    if "Connection refused" in text:
        return "connection refused"
    return type(error).__name__


def wait_for_server(uri: str, timeout: float) -> None:
    """Return once an http(s) tracking server answers at all; fail within timeout seconds.

    Any HTTP answer counts (401 from a server with auth on too): this only tells a
    server that is down or unreachable from one that MLflow's client can talk to.
    """
    if urlsplit(uri).scheme not in ("http", "https"):
        return
    url = uri.rstrip("/") + "/health"
    deadline = time.monotonic() + timeout
    try:
        # An attempt a second, none started that could not answer before the deadline.
        for attempt in attempts(timeout, requests.RequestException):
            with attempt:
                try:
                    requests.get(url, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
                except requests.exceptions.SSLError:
                    return  # it answers; MLflow's own TLS settings decide whether to trust it
    except requests.RequestException as error:
        raise TrainingError(
            f"the MLflow tracking server at {redact(uri)} did not answer within "
            f"{timeout:g} s ({_reason(error)}): check the tracking_uri hyperparameter or "
            "MLFLOW_TRACKING_URI, and that the server is reachable from the job"
        ) from None


def _bounded(action: Callable[[], Any], seconds: float, what: str) -> None:
    """Run action in a daemon thread and stop waiting after seconds (used while failing)."""

    def target() -> None:
        try:
            action()
        except Exception as error:  # best effort: the job is failing already
            log.warning(
                "could not %s: %s", what, str(error).splitlines()[0] if str(error) else error
            )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        log.warning("gave up trying to %s after %.0f s", what, seconds)


class NoTracking:
    """No tracking URI: train and write /opt/ml/model, log nothing to MLflow."""

    enabled = False

    def start(self, run_name: str | None, tags: Mapping[str, str]) -> None:
        log.info(
            "no tracking URI (tracking_uri hyperparameter or MLFLOW_TRACKING_URI): "
            "training without MLflow"
        )

    def log_params(self, params: Mapping[str, object]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        pass

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def log_dict(self, values: Mapping[str, object], artifact_file: str) -> None:
        pass

    def log_model(
        self,
        model: Any,
        saved_model_dir: Path,
        registered_model_name: str | None,
        **model_args: Any,
    ) -> None:
        pass

    def log_baseline(
        self, frame: Any, features: list[str], target: str, predict: Any, source: str
    ) -> None:
        pass

    def finish(self) -> None:
        pass

    def fail(self, status: str, reason: str, wait: float) -> None:
        pass


class MlflowTracking(NoTracking):
    """One MLflow run for the job, on the given tracking server.

    MlflowClient calls with an explicit run id rather than the fluent active run: the
    fluent API ends an active run FINISHED at interpreter exit, which could overwrite the
    FAILED or KILLED status of a job that is failing.
    """

    enabled = True

    def __init__(self, uri: str, experiment_name: str | None, wait_timeout: float) -> None:
        self.uri = uri
        self.experiment_name = experiment_name
        self.wait_timeout = wait_timeout
        self.run_id: str | None = None
        self._client: Any = None

    def start(self, run_name: str | None, tags: Mapping[str, str]) -> None:
        wait_for_server(self.uri, self.wait_timeout)
        import mlflow
        from mlflow.exceptions import MlflowException

        mlflow.set_tracking_uri(self.uri)  # mlflow.sklearn.log_model resolves it globally
        self._client = mlflow.MlflowClient(self.uri)
        try:
            experiment = self._experiment()
            run = self._client.create_run(
                experiment.experiment_id, run_name=run_name, tags=dict(tags)
            )
        except MlflowException as error:
            raise TrainingError(
                f"MLflow at {redact(self.uri)} refused to start the run: "
                f"{error.message.strip().splitlines()[0]}"
            ) from None
        self.run_id = run.info.run_id
        # mlflow.sklearn.log_model files the logged model under the active experiment, not
        # under its run's: make the run's experiment the active one.
        mlflow.set_experiment(experiment_id=experiment.experiment_id)
        log.info(
            "MLflow run %s (%s) in experiment %r at %s",
            run.info.run_id,
            run.info.run_name,
            experiment.name,
            redact(self.uri),
        )

    def _experiment(self) -> Any:
        """The named experiment, created if new (tuning jobs may race to create it), or
        MLflow's Default experiment."""
        from mlflow.exceptions import MlflowException

        if not self.experiment_name:
            return self._client.get_experiment("0")
        experiment = self._client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                self._client.create_experiment(self.experiment_name)
            except MlflowException as error:
                if error.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            experiment = self._client.get_experiment_by_name(self.experiment_name)
        if experiment.lifecycle_stage != "active":
            raise TrainingError(
                f"experiment {self.experiment_name!r} is deleted: restore it in MLflow or "
                "choose another experiment_name"
            )
        return experiment

    def log_params(self, params: Mapping[str, object]) -> None:
        from mlflow.entities import Param

        self._client.log_batch(
            self.run_id, params=[Param(key, str(value)) for key, value in params.items()]
        )

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._client.log_batch(
            self.run_id,
            metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        )

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_dict(self, values: Mapping[str, object], artifact_file: str) -> None:
        self._client.log_dict(self.run_id, dict(values), artifact_file)

    def log_model(
        self,
        model: Any,
        saved_model_dir: Path,
        registered_model_name: str | None,
        **model_args: Any,
    ) -> None:
        """Log the model as the run's logged model, with the saved copy's requirements
        (so they are not inferred a second time)."""
        import mlflow.sklearn

        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_NAME,
            run_id=self.run_id,
            registered_model_name=registered_model_name,
            pip_requirements=str(saved_model_dir / "requirements.txt"),
            **model_args,
        )
        log.info("logged model %s (%s)", info.model_id, info.model_uri)

    def log_baseline(
        self, frame: Any, features: list[str], target: str, predict: Any, source: str
    ) -> None:
        """The training data's monitoring baseline on the run (`mlstack monitor` reads it)."""
        from mlstack_mlflow_plugin import baseline

        baseline.record(self.run_id, frame, features, target, predict, source, client=self._client)

    def finish(self) -> None:
        self._client.set_terminated(self.run_id, "FINISHED")
        log.info("MLflow run %s FINISHED", self.run_id)

    def fail(self, status: str, reason: str, wait: float) -> None:
        """End the run FAILED or KILLED with the reason as a tag, giving up after wait s."""
        if self.run_id is None:
            return
        client, run_id = self._client, self.run_id

        def end() -> None:
            try:
                client.set_tag(run_id, FAILURE_TAG, reason[:FAILURE_TAG_LIMIT])
            finally:
                client.set_terminated(run_id, status)
            log.info("MLflow run %s %s", run_id, status)

        _bounded(end, wait, f"mark MLflow run {run_id} {status}")
