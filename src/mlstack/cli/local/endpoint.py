"""The local endpoint: models:/MODEL_NAME@champion served by the inference image on
127.0.0.1:SERVE_PORT in the stack's network (`mlstack local serve`), asked the reference's
request (`mlstack local predict`), removed with the stack (`mlstack local down`).

Every way it can fail is one line with the next step: no champion yet (checked before a
container starts), a container that stops while it loads (its own last error line, not a
pointer to its logs), nothing answering where predict looks.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import requests

from mlstack.cli import docker_engine
from mlstack.cli.channels import ChannelError, reference_payload
from mlstack.cli.local.jobs import JobError
from mlstack.cli.local.loop import require_tracking_server
from mlstack.cli.local.promote import ALIAS, not_found
from mlstack.core.waiting import TimedOut, until_ok

if TYPE_CHECKING:
    from mlstack.cli.local.loop import Loop


def champion_uri(loop: Loop) -> str:
    """models:/MODEL_NAME@champion, checked to exist at the tracking server."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    require_tracking_server(loop)
    name = loop.settings.model_name
    try:
        MlflowClient(tracking_uri=loop.tracking_uri).get_model_version_by_alias(name, ALIAS)
    except MlflowException as error:
        if not not_found(error):
            raise
        raise JobError(
            f"{name}@{ALIAS} does not exist at {loop.tracking_uri}: tune and promote a model "
            "first (make local-hpo, then make local-promote), or set MODEL_NAME"
        ) from None
    return f"models:/{name}@{ALIAS}"


def last_error_line(logs: str) -> str:
    """The line of a stopped container's log that says why: its last error line (the
    images print one: `mlstack-inference: error: ...`), else its last line."""
    lines = [line.strip() for line in logs.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return ((errors or lines or ["no output"])[-1])[:400]


def wait_ready(endpoint: str, container: str, timeout: float) -> None:
    """Wait until the endpoint's /ping answers 200 (the model is loaded); fail at once,
    with the container's own last error line, when it stops."""
    from docker.errors import NotFound

    def alive() -> None:
        try:
            found = docker_engine.client().containers.get(container)
        except NotFound:
            raise JobError(f"the endpoint's container {container} is gone") from None
        if found.status in ("exited", "dead"):
            logs = found.logs(tail=50).decode(errors="replace")
            raise JobError(f"the endpoint {container} stopped: {last_error_line(logs)}")

    try:
        until_ok(f"{endpoint}/ping", timeout, 1, alive)
    except TimedOut:
        raise JobError(
            f"{endpoint}/ping did not answer 200 within {timeout:.0f} s: "
            f"see `docker logs {container}`"
        ) from None
    print(f"{endpoint} is ready")


def serve(loop: Loop, container: str, timeout: float) -> None:
    """Serve models:/MODEL_NAME@champion with the inference image on 127.0.0.1:SERVE_PORT,
    in the stack's network (replacing an earlier endpoint of that name); wait until ready."""
    from docker.errors import ImageNotFound, NotFound

    settings = loop.settings
    model_uri = champion_uri(loop)
    remove_endpoint(container)
    environment = {
        "MODEL_URI": model_uri,
        "MLFLOW_TRACKING_URI": loop.tracking_uri_in_network,
        **settings.tracking_credentials(),  # environment, never a command line
        **settings.capture_environment(),  # data capture into the stack's MinIO
    }
    try:
        docker_engine.client().containers.run(
            settings.inference_image_tag,
            ["serve"],
            name=container,
            detach=True,
            network=loop.network,
            ports={"8080/tcp": ("127.0.0.1", settings.serve_port)},
            environment=environment,
        )
    except ImageNotFound:
        raise JobError(
            f"image {settings.inference_image_tag} is missing: run `make build-inference`"
        ) from None
    except NotFound:
        raise JobError(f"network {loop.network} does not exist: run `make local-up`") from None
    wait_ready(settings.endpoint, container, timeout)
    print(f"Endpoint: {settings.endpoint}/invocations")
    print(f"Data capture: {settings.capture_uri}/{settings.endpoint_name}/")


def predict(loop: Loop, endpoint: str | None = None) -> None:
    """Send the first test row as the reference does and print the prediction (endpoint:
    the --endpoint given, else the stack's own on SERVE_PORT)."""
    import pandas as pd

    from mlstack.cli.local.loop import data_spec

    url = endpoint or loop.settings.endpoint
    said = "--endpoint" if endpoint else f"SERVE_PORT={loop.settings.serve_port}"
    spec = data_spec(loop.settings.data_dir)
    test_csv = loop.settings.data_dir / "test" / "test.csv"
    features = spec["features"].split()
    try:
        payload = reference_payload(test_csv, spec["target"], features)
    except ChannelError as error:
        raise JobError(str(error)) from None
    try:
        response = requests.post(
            f"{url}/invocations",
            data=payload,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    except (requests.ConnectionError, requests.Timeout):
        raise JobError(
            f"nothing answers at {url} ({said}): serve a model there first (make local-serve)"
        ) from None
    if response.status_code != 200:
        raise JobError(f"{url} answered {response.status_code}: {response.text.strip()[:300]}")
    prediction = response.json()["predictions"][0]
    test = pd.read_csv(test_csv)
    print(f"input:      {test[features].iloc[[0]].to_dict(orient='records')[0]}")
    print(f"prediction: {prediction}")
    print(f"actual:     {test[spec['target']].iloc[0]}")


def remove_endpoint(container: str) -> None:
    """Remove the endpoint's container, if there is one."""
    from docker.errors import NotFound

    with contextlib.suppress(NotFound):
        docker_engine.client().containers.get(container).remove(force=True)
