"""Fixtures of the inference suites: the diabetes forest, saved as MLflow models, and
running inference containers (one per configuration, shared by a module)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from .models import Diabetes, diabetes, forest, make_readable, save_model, tar_model

CONTAINER_PORT = 8080


@pytest.fixture(scope="session")
def diabetes_data() -> Diabetes:
    return diabetes()


@pytest.fixture(scope="session")
def forest_model(diabetes_data: Diabetes):
    return forest(diabetes_data)


@pytest.fixture(scope="session")
def forest_model_dir(tmp_path_factory: pytest.TempPathFactory, forest_model, diabetes_data) -> Path:
    """The 100-tree forest saved as an MLflow model folder."""
    return save_model(forest_model, diabetes_data, tmp_path_factory.mktemp("forest") / "model")


@pytest.fixture(scope="session")
def forest_predictor(forest_model_dir: Path):
    """The saved forest loaded the way each server worker loads it."""
    from mlstack_inference.predictor import load_predictor

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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        container.get_wrapped_container().reload()
        if container.get_wrapped_container().status == "exited":
            break
        time.sleep(0.25)
    stdout, stderr = container.get_logs()
    raise AssertionError(f"inference server not ready: {(stdout + stderr).decode()[-3000:]}")


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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                status = requests.get(f"{server.url}/ping", timeout=2).status_code
            except requests.RequestException:
                status = None
            tuned.pings.append(status)
            if status == 200:
                break
            time.sleep(0.05)
        assert tuned.pings[-1] == 200, server.logs()
        yield tuned
