"""The runner's calls to the job's tracking server, over MLflow's REST API: wait for it,
check the experiment, end the runs a failed job left open.

The runner talks REST rather than through the MLflow client because a script's
requirements.txt may have replaced the image's MLflow 3.17 client with a 2.x one by the time
the runner needs it; these endpoints (MLflow REST API 2.0: experiments/get-by-name,
experiments/create, experiments/search, runs/search, runs/set-tag, runs/update) are the same
for every client and server version involved. The script's own runs go through its MLflow
client.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from mlstack.core.waiting import attempts
from mlstack.training.config import Settings
from mlstack.training.errors import TrainingError
from mlstack_mlflow_plugin.job import FAILURE_TAG, FAILURE_TAG_LIMIT, JOB_KEY_TAG

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0


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


class RestTracking:
    """Just enough of MLflow's REST API for the runner, with the client's credentials."""

    def __init__(self, uri: str, settings: Settings) -> None:
        self.base = uri.rstrip("/") + "/api/2.0/mlflow/"
        self.session = requests.Session()
        # The credentials and TLS settings MLflow's own client reads (config.Settings).
        user, password = settings.tracking_username, settings.tracking_password
        if user and password:
            self.session.auth = (user, password.get_secret_value())
        elif settings.tracking_token:
            token = settings.tracking_token.get_secret_value()
            self.session.headers["Authorization"] = f"Bearer {token}"
        if settings.tracking_insecure_tls:
            self.session.verify = False
        elif settings.tracking_server_cert_path:
            self.session.verify = settings.tracking_server_cert_path
        self.uri = uri

    def call(self, method: str, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One request; MLflow's error message on failure."""
        if method == "GET":
            response = self.session.get(self.base + endpoint, params=body, timeout=REQUEST_TIMEOUT)
        else:
            response = self.session.post(self.base + endpoint, json=body, timeout=REQUEST_TIMEOUT)
        if response.status_code != 200:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise TrainingError(
                f"MLflow at {redact(self.uri)} answered {response.status_code} to {endpoint}: "
                f"{str(message).strip()[:300]}"
            )
        return response.json() if response.content else {}

    def ensure_experiment(self, name: str) -> str:
        """The id of the named experiment, created if new (tuning jobs may race to create it)."""
        for attempt in (1, 2):
            try:
                found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
            except TrainingError as error:
                if "RESOURCE_DOES_NOT_EXIST" not in str(error) and " 404 " not in str(error):
                    raise
            else:
                experiment = found["experiment"]
                if experiment.get("lifecycle_stage") != "active":
                    raise TrainingError(
                        f"experiment {name!r} is deleted: restore it in MLflow or choose "
                        "another experiment_name"
                    )
                return experiment["experiment_id"]
            try:
                return self.call("POST", "experiments/create", {"name": name})["experiment_id"]
            except TrainingError as error:
                if "RESOURCE_ALREADY_EXISTS" not in str(error) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def experiment_ids(self) -> list[str]:
        """Every active experiment (a script may log to any experiment it likes)."""
        ids: list[str] = []
        token = None
        while True:
            body: dict[str, Any] = {"max_results": 1000, "view_type": "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self.call("POST", "experiments/search", body)
            ids += [e["experiment_id"] for e in page.get("experiments", [])]
            token = page.get("next_page_token")
            if not token:
                return ids

    def job_runs(self, job_key: str) -> dict[str, str]:
        """Run id -> status of this job's runs (the plugin tags them with the job key)."""
        ids = self.experiment_ids()
        found: dict[str, str] = {}
        for start in range(0, len(ids), 100):
            page = self.call(
                "POST",
                "runs/search",
                {
                    "experiment_ids": ids[start : start + 100],
                    "filter": f"tags.`{JOB_KEY_TAG}` = '{job_key}'",
                    "max_results": 1000,
                },
            )
            found.update({r["info"]["run_id"]: r["info"]["status"] for r in page.get("runs", [])})
        return found

    def end_open_runs(self, job_key: str, status: str, reason: str) -> list[str]:
        """End this job's RUNNING runs with status; tag them, and the runs the script itself
        ended FAILED or KILLED, with the job's failure reason. Return the ids tagged."""
        tagged = []
        for run_id, current in self.job_runs(job_key).items():
            if current == "FINISHED":
                continue  # a run the script completed before the job failed stays as it is
            self.call(
                "POST",
                "runs/set-tag",
                {"run_id": run_id, "key": FAILURE_TAG, "value": reason[:FAILURE_TAG_LIMIT]},
            )
            if current in ("RUNNING", "SCHEDULED"):
                self.call(
                    "POST",
                    "runs/update",
                    {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)},
                )
                log.info("MLflow run %s %s", run_id, status)
            tagged.append(run_id)
        return tagged
