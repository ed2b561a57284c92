"""Serving models with the dependencies they were trained with, in real containers.

The legacy model is saved by the MLflow 2.12.1 client stack of tests/support/mlflow2
(scikit-learn 1.5.2, numpy 1.26.4, pandas 2.3, built once and kept by its inputs' hash);
the model image is built from it once per session with `mlstack build-model-image`'s code
(mlstack.cli.model_image).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests

from support.legacy import MLFLOW2_DIR, build_mlflow2_image

from .conftest import InferenceServer, running_server, serve_to_exit, wait_ready
from .models import make_readable

pytestmark = pytest.mark.docker

# SageMaker's ContainerStartupHealthCheckTimeoutInSeconds can be set no lower than 60 s
# (API reference, ProductionVariant): /ping must answer 200 well within that.
PING_LIMIT_SECONDS = 60


@dataclass(frozen=True)
class Legacy:
    """The model saved by the old stack, and what that stack predicted itself."""

    model_dir: Path
    columns: list[str]
    rows: list[list[float]]
    predictions: list[float]
    versions: dict[str, str]

    def body(self) -> str:
        return json.dumps({"dataframe_split": {"columns": self.columns, "data": self.rows}})


def _copy_out(container, path: str, dest: Path) -> Path:
    """docker cp container:path dest/ (the archive's top folder is path's basename)."""
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        archive.extractall(dest, filter="data")
    return dest / Path(path).name


def _run_and_copy(image: str, command: list[str], path: str, dest: Path) -> tuple[Path, str]:
    """Run a one-off container to its end, copy `path` out of it, remove it."""
    container = docker.from_env().containers.run(image, command, entrypoint=[], detach=True)
    try:
        status = container.wait(timeout=300)["StatusCode"]
        output = container.logs().decode(errors="replace")
        assert status == 0, output[-3000:]
        return _copy_out(container, path, dest), output
    finally:
        container.remove(force=True)


@pytest.fixture(scope="session")
def legacy_model(tmp_path_factory: pytest.TempPathFactory) -> Legacy:
    script = (MLFLOW2_DIR / "legacy_model.py").read_text()
    model_dir, output = _run_and_copy(
        build_mlflow2_image(),
        ["/opt/mlflow212/bin/python", "-W", "ignore", "-c", script],
        "/tmp/legacy-model",
        tmp_path_factory.mktemp("legacy"),
    )
    make_readable(model_dir)
    saved = json.loads(output.split("SAVED ", 1)[1].splitlines()[0])
    return Legacy(
        model_dir, saved["columns"], saved["rows"], saved["predictions"], saved["versions"]
    )


@pytest.fixture(scope="session")
def legacy_model_image(inference_image: str, legacy_model: Legacy) -> Iterator[str]:
    """The legacy model's image, built once per session and removed after it."""
    from mlstack.cli.model_image import build

    tag = f"mlstack-test/model-legacy:{int(time.time())}"
    build(str(legacy_model.model_dir), tag, inference_image)
    yield tag
    docker.from_env().images.remove(tag, force=True)


def predict(server: InferenceServer, legacy: Legacy) -> list[float]:
    response = server.invoke(legacy.body())
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_the_legacy_model_is_from_the_old_stack(legacy_model: Legacy) -> None:
    assert legacy_model.versions["scikit-learn"] == "1.5.2"
    assert legacy_model.versions["numpy"].startswith("1.26.")
    assert legacy_model.versions["mlflow"] == "2.12.1"


def test_strict_refuses_with_one_line(inference_image: str, legacy_model: Legacy) -> None:
    status, output = serve_to_exit(inference_image, legacy_model.model_dir, {})  # strict: default
    assert status != 0, output
    errors = [line for line in output.splitlines() if "mlstack-inference: error:" in line]
    assert len(errors) == 1, output
    assert "scikit-learn 1.5.2" in errors[0] and "1.9.1" in errors[0]
    assert "make build-model-image" in errors[0] and "INFERENCE_ENV_POLICY" in errors[0]
    assert "Traceback" not in output


def test_warn_serves_with_the_warning(inference_image: str, legacy_model: Legacy) -> None:
    env = {"INFERENCE_ENV_POLICY": "warn"}
    with running_server(inference_image, env, legacy_model.model_dir) as server:
        assert predict(server, legacy_model) == pytest.approx(legacy_model.predictions)
        facts = requests.get(f"{server.url}/environment", timeout=5).json()
        logs = server.logs()
    assert "serving a model saved with other versions" in logs
    assert "scikit-learn model 1.5.2 here 1.9.1 (differs)" in logs
    assert facts["policy"] == "warn"
    assert {p["name"]: p["status"] for p in facts["packages"]}["scikit-learn"] == "differs"


def test_model_image_serves_with_its_own_versions(legacy_model_image: str, legacy_model: Legacy):
    started = time.monotonic()
    with running_server(legacy_model_image) as server:
        ready_after = time.monotonic() - started
        assert predict(server, legacy_model) == legacy_model.predictions
        facts = requests.get(f"{server.url}/environment", timeout=5).json()
        parameters = requests.get(f"{server.url}/execution-parameters", timeout=5).json()
        ping = requests.get(f"{server.url}/ping", timeout=2)
        logs = server.logs()
    assert ready_after < PING_LIMIT_SECONDS, logs
    assert ping.status_code == 200
    # The log names the model's own versions, serving in the prebuilt venv.
    assert "using the prebuilt venv /opt/model-env" in logs
    assert "scikit-learn model 1.5.2 here 1.5.2 (same)" in logs
    assert "mlflow model 2.12.1 here 2.12.1 (same)" in logs
    assert "InconsistentVersionWarning" not in logs
    installed = {p["name"]: p["installed"] for p in facts["packages"]}
    assert installed["numpy"] == legacy_model.versions["numpy"]
    assert installed["pandas"] == legacy_model.versions["pandas"]
    assert facts["model_venv"] == "/opt/model-env" and facts["policy"] == "model"
    # /execution-parameters stays SageMaker's own.
    assert set(parameters) == {"MaxConcurrentTransforms", "BatchStrategy", "MaxPayloadInMB"}


TRAINING_SAVE = """
import pandas as pd
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor
from mlstack.training.model import model_args, save
x, y = load_diabetes(return_X_y=True, as_frame=True)
forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(x, y)
save(forest, __import__("pathlib").Path("/tmp/trained"), model_args(forest, x))
"""


def test_training_image_models_match_the_inference_image(
    training_image: str, inference_image: str, tmp_path: Path
) -> None:
    model_dir, _ = _run_and_copy(
        training_image, ["python", "-c", TRAINING_SAVE], "/tmp/trained", tmp_path
    )
    make_readable(model_dir)
    with running_server(inference_image, {}, model_dir) as server:  # strict, the default
        facts = requests.get(f"{server.url}/environment", timeout=5).json()
    statuses = {p["name"]: p["status"] for p in facts["packages"]}
    # Exactly: every package the training image pins is the inference image's version.
    assert statuses == {
        "scikit-learn": "same",
        "numpy": "unpinned",
        "pandas": "same",
        "mlflow": "same",
    }, facts
    assert facts["python_model"] == facts["python_here"]


def test_model_policy_creates_the_venv_once_at_start(inference_image: str, legacy_model: Legacy):
    """INFERENCE_ENV_POLICY=model where PyPI is reachable: a venv of the model's own
    requirements, created at start-up (the time it took logged), then served from."""
    env = {"INFERENCE_ENV_POLICY": "model"}
    with running_server(inference_image, env, legacy_model.model_dir, wait=False) as server:
        wait_ready(server.url, server.container, timeout=400)
        assert predict(server, legacy_model) == legacy_model.predictions
        facts = requests.get(f"{server.url}/environment", timeout=5).json()
        logs = server.logs()
    assert re.search(r"model environment: created \S+ in [0-9.]+ s", logs), logs[-2000:]
    assert facts["model_venv"].startswith("/tmp/mlstack-inference/envs/")
    assert {p["name"]: p["installed"] for p in facts["packages"]}["scikit-learn"] == "1.5.2"
