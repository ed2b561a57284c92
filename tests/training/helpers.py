"""Running the training image against an /opt/ml tree, the built-in script as the image's runner
runs it, and what tests compare with."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import docker

from mlstack.training.paths import OptML
from mlstack.training.script_mode import BUILTIN_PROGRAM
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


def toolkit_hyperparameters(hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
    """The user's hyperparameters as sagemaker-training 5.1.4 reads hyperparameters.json: each
    value JSON-decoded where it can be (environment.read_hyperparameters), the `sagemaker_*`
    keys set apart (Environment)."""
    decoded: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        if key.startswith("sagemaker_"):
            continue
        try:
            decoded[key] = json.loads(value)
        except (TypeError, ValueError):
            decoded[key] = value
    return decoded


def toolkit_argv(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The script's command line as the toolkit builds it (mapping.to_cmd_args): `--name
    value` in name order (`-n value` for a one-letter name), values as text."""
    argv: list[str] = []
    for key, value in sorted(toolkit_hyperparameters(hyperparameters).items()):
        argv += [f"--{key}" if len(key) > 1 else f"-{key}", "" if value is None else str(value)]
    return argv


def job_env(
    opt_ml: OptML, hyperparameters: Mapping[str, Any], entry_point: str = BUILTIN_PROGRAM
) -> dict[str, str]:
    """The SM_* variables the runner exports to the script for this /opt/ml (the toolkit's
    Environment.to_env_vars): a channel's directory for each channel inputdataconfig.json
    names, SM_TRAINING_ENV (a script-mode job: the image's MLflow plugin applies)."""
    config = json.loads(opt_ml.input_data_config_file.read_text())
    decoded = toolkit_hyperparameters(hyperparameters)
    env = {
        "SM_TRAINING_ENV": json.dumps({"hyperparameters": decoded}),
        "SM_HPS": json.dumps(decoded),
        "SM_USER_ENTRY_POINT": entry_point,
        "SM_INPUT_DIR": str(opt_ml.root / "input"),
        "SM_INPUT_DATA_CONFIG": json.dumps(config),
        "SM_CHANNELS": json.dumps(sorted(config)),
        "SM_MODEL_DIR": str(opt_ml.model_dir),
        "SM_OUTPUT_DATA_DIR": str(opt_ml.output_data_dir),
    }
    env.update({f"SM_CHANNEL_{name.upper()}": str(opt_ml.channel(name)) for name in config})
    return env


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
