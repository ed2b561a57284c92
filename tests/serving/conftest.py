"""Fixtures of the inference suites: the training package's diabetes forest, saved as the
training image saves it, and running inference containers (one per configuration, shared
by a module)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from support.containers import has_exited, logs_of, run_to_exit
from support.waiting import wait_for_http, wait_until

from .models import Diabetes, diabetes, forest, make_readable, save_model, tar_model

CONTAINER_PORT = 8080


@pytest.fixture(scope="session")
def diabetes_data(tmp_path_factory: pytest.TempPathFactory) -> Diabetes:
    """The training image's data set: `make data`'s diabetes channels, read as it reads them."""
    return diabetes(tmp_path_factory.mktemp("opt_ml"))


@pytest.fixture(scope="session")
def one_row(diabetes_data: Diabetes) -> bytes:
    """The reference's request body: the first test row, df.iloc[[0]].to_json(orient="split")."""
    return diabetes_data.test.iloc[[0]].to_json(orient="split").encode()


@pytest.fixture(scope="session")
def trained_forest(diabetes_data: Diabetes):
    """The forest the training package fits on it, as the training image saves it."""
    return forest(diabetes_data)


@pytest.fixture(scope="session")
def forest_model(trained_forest):
    """The same forest as the reference the tests compare with: scikit-learn's own predict."""
    return trained_forest


@pytest.fixture(scope="session")
def forest_model_dir(
    tmp_path_factory: pytest.TempPathFactory, trained_forest, diabetes_data
) -> Path:
    """The 100-tree forest saved as the training image saves it into /opt/ml/model."""
    return save_model(trained_forest, diabetes_data, tmp_path_factory.mktemp("forest") / "model")


@pytest.fixture(scope="session")
def forest_predictor(forest_model_dir: Path):
    """The saved forest loaded the way each server worker loads it."""
    from mlstack.serving.predictor import load_predictor

    return load_predictor(forest_model_dir)


@dataclass
class InferenceServer:
    """A running inference container and where the test process reaches it."""

    container: object
    url: str

    def logs(self) -> str:
        stdout, stderr = self.container.get_logs()
        return (stdout + stderr).decode(errors="replace")

    def invoke(self, body: bytes | str, content_type: str = "application/json", **headers):
        """POST /invocations."""
        headers = {"Content-Type": content_type, **headers}
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=30)


def inference_container(
    image: str,
    env: Mapping[str, str] | None = None,
    model_dir: Path | None = None,
    port: int = CONTAINER_PORT,
    network=None,
):
    """An inference container (not started) serving `model_dir` mounted at /opt/ml/model."""
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_command("serve").with_exposed_ports(port)
    container.with_envs(**dict(env or {}))
    if model_dir is not None:
        container.with_volume_mapping(str(model_dir), "/opt/ml/model", "ro")
    if network is not None:
        container.with_network(network)
    return container


def wait_ready(url: str, container, timeout: float = 120) -> None:
    """Wait until /ping answers 200; fail with the container's logs otherwise."""
    wait_for_http(
        f"{url}/ping",
        timeout=timeout,
        every=0.25,
        give_up=lambda: has_exited(container),
        message=lambda: f"inference server not ready: {logs_of(container)}",
    )


def serve_to_exit(
    image: str,
    model_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    network=None,
    timeout: float = 90,
) -> tuple[int, str]:
    """`serve` in a container expected to stop by itself; its exit status and logs."""
    volumes = {str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}} if model_dir else None
    exited = run_to_exit(
        image, ["serve"], timeout=timeout, network=network, env=env, volumes=volumes
    )
    return exited.status, exited.logs


@contextmanager
def running_server(
    image: str,
    env: Mapping[str, str] | None = None,
    model_dir: Path | None = None,
    port: int = CONTAINER_PORT,
    network=None,
    wait: bool = True,
) -> Iterator[InferenceServer]:
    """Start an inference container, wait for /ping (unless wait=False), remove it after."""
    container = inference_container(image, env, model_dir, port, network)
    with container:
        host = container.get_container_host_ip()
        server = InferenceServer(container, f"http://{host}:{container.get_exposed_port(port)}")
        if wait:
            wait_ready(server.url, container)
        yield server


# --- the two long-lived containers of the package's server suites ------------------------


@pytest.fixture(scope="package")
def served(inference_image: str, forest_model_dir: Path) -> Iterator[InferenceServer]:
    """Defaults, the model folder at /opt/ml/model, fast path on; shared by the package."""
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"}
    with running_server(inference_image, env, forest_model_dir) as server:
        yield server


@dataclass
class Tuned:
    server: InferenceServer
    pings: list[int | None] = field(default_factory=list)


@pytest.fixture(scope="package")
def tuned(
    inference_image: str, forest_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tuned]:
    """model.tar.gz in /opt/ml/model; /ping polled from the start to see it load."""
    root = tmp_path_factory.mktemp("tarball") / "model"
    root.mkdir()
    tar_model(forest_model_dir, root / "model.tar.gz")
    make_readable(root)
    env = {
        "SAGEMAKER_BIND_TO_PORT": "9090",
        "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1",
        "INFERENCE_FAST_PATH": "false",
    }
    with running_server(inference_image, env, root, port=9090, wait=False) as server:
        tuned = Tuned(server)

        def ping() -> bool:
            try:
                tuned.pings.append(requests.get(f"{server.url}/ping", timeout=2).status_code)
            except requests.RequestException:
                tuned.pings.append(None)
            return tuned.pings[-1] == 200

        wait_until(ping, timeout=120, every=0.05, message=server.logs)
        yield tuned
