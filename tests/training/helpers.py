"""Running the training image against an /opt/ml tree, and what tests compare with."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import docker

from mlstack.training.paths import OptML
from support.containers import Exited, wait_for_exit
from support.stack import TrackingServer

FEATURES = "age sex bmi bp s1 s2 s3 s4 s5 s6"
TARGET = "progression"
# Metric lines as SageMaker metric definitions read them; the first is the reference's.
METRIC_REGEXES = {
    "AE-at-10th-percentile": r"AE-at-10th-percentile: ([0-9.]+).*$",
    "AE-at-50th-percentile": r"AE-at-50th-percentile: ([0-9.]+).*$",
    "AE-at-90th-percentile": r"AE-at-90th-percentile: ([0-9.]+).*$",
    "rmse": r"rmse: ([0-9.]+).*$",
    "mae": r"mae: ([0-9.]+).*$",
    "r2": r"r2: (-?[0-9.]+).*$",
}


def job_hyperparameters(server: TrackingServer, experiment: str) -> dict[str, str]:
    """A script-mode job's tracking settings and the data's columns, as a user passes them."""
    return {
        "tracking_uri": server.uri_in_network,
        "experiment_name": experiment,
        "features": FEATURES,
        "target": TARGET,
    }


def json_encoded(hyperparameters: Mapping[str, str]) -> dict[str, str]:
    """Hyperparameters as the SageMaker SDK's script mode sends them (each value JSON-encoded)."""
    return {key: json.dumps(value) for key, value in hyperparameters.items()}


@contextmanager
def training_container(
    image: str,
    opt_ml: OptML,
    env: Mapping[str, str] | None = None,
    network: str | None = None,
) -> Iterator[docker.models.containers.Container]:
    """`docker run IMAGE train` with opt_ml mounted at /opt/ml, removed on the way out."""
    client = docker.from_env()
    container = client.containers.run(
        image,
        ["train"],
        name=f"mlstack-training-test-{uuid.uuid4().hex[:8]}",
        detach=True,
        environment=dict(env or {}),
        network=network,
        volumes={str(opt_ml.root): {"bind": "/opt/ml", "mode": "rw"}},
    )
    try:
        yield container
    finally:
        container.remove(force=True)


def run_training(
    image: str,
    opt_ml: OptML,
    env: Mapping[str, str] | None = None,
    network: str | None = None,
    timeout: float = 120,
) -> Exited:
    """Run a training container to its end (killed after timeout) and collect its logs."""
    started = time.monotonic()
    with training_container(image, opt_ml, env, network) as container:
        return wait_for_exit(container, timeout, started)
