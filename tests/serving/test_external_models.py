"""Models from elsewhere: MODEL_URI through the tracking server, and a training job's output."""

from __future__ import annotations

import json
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pytest
from mlflow import MlflowClient

from mlstack.training.model import model_args
from support.stack import auth_env, new_admin, point_mlflow_at, tracking_server_container

from .conftest import InferenceServer, running_server, serve_to_exit
from .models import (
    PIP_REQUIREMENTS,
    Diabetes,
    full_split,
    make_readable,
    relative_error,
    tar_model,
)

pytestmark = pytest.mark.docker


def predicts_like(server: InferenceServer, model, data: Diabetes) -> None:
    """The server answers the whole test set as the model itself predicts it."""
    response = server.invoke(full_split(data.test))
    assert response.status_code == 200, response.text
    assert relative_error(response.json()["predictions"], model.predict(data.test)) <= 1e-9


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set for a block, then restored exactly as it was."""
    with pytest.MonkeyPatch.context() as patch:
        point_mlflow_at(patch, uri)
        yield


@pytest.fixture(scope="module")
def champion(tracking_server, forest_model, diabetes_data: Diabetes) -> str:
    """The forest registered in the tracking server, alias champion; returns its name."""
    name = f"diabetes-{uuid.uuid4().hex[:8]}"
    with tracking_uri(tracking_server.uri_from_host):
        register(name, forest_model, diabetes_data)
    return name


def register(name: str, model, data: Diabetes) -> None:
    """Log the model as the training image does, register it as `name`, alias champion."""
    experiment = MlflowClient().create_experiment(f"inference-tests-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            pip_requirements=PIP_REQUIREMENTS,
            **model_args(model, data.train),
            registered_model_name=name,
        )
    MlflowClient().set_registered_model_alias(name, "champion", info.registered_model_version)


def test_model_uri_from_the_tracking_server(
    inference_image: str,
    tracking_server,
    docker_network,
    champion: str,
    forest_model,
    diabetes_data,
) -> None:
    env = {
        "MODEL_URI": f"models:/{champion}@champion",
        "MLFLOW_TRACKING_URI": tracking_server.uri_in_network,
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
    }
    with running_server(inference_image, env, network=docker_network) as server:
        predicts_like(server, forest_model, diabetes_data)
        logs = server.logs()
    assert f"downloading models:/{champion}@champion" in logs
    assert logs.count("downloading") == 1, logs  # once per container, not per worker
    assert "fast path on (RandomForestRegressor with 100 trees" in logs


def test_unknown_model_uri_stops_with_one_line(
    inference_image: str, tracking_server, docker_network
) -> None:
    env = {
        "MODEL_URI": "models:/no-such-model@champion",
        "MLFLOW_TRACKING_URI": tracking_server.uri_in_network,
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
    status, logs = serve_to_exit(inference_image, env=env, network=docker_network, timeout=180)
    assert status != 0
    assert (
        "mlstack-inference: error: cannot download MODEL_URI=models:/no-such-model@champion" in logs
    )


# --- a tracking server with basic-auth on ------------------------------------------------------

AUTH_ALIAS = "inference-auth-tracking"
ADMIN = new_admin()


@pytest.fixture(scope="module")
def auth_champion(
    tracking_server_image: str, docker_network, mysql, minio, forest_model, diabetes_data
) -> Iterator[tuple[str, str]]:
    """A tracking server with auth on (its own databases); the forest registered there.

    Yields the model URI and the server's URI inside the network.
    """
    suffix = uuid.uuid4().hex[:8]
    env = auth_env(mysql, minio, f"mlflow_inference_{suffix}", ADMIN, ALLOWED_HOSTS=AUTH_ALIAS)
    server = tracking_server_container(tracking_server_image, docker_network, env, AUTH_ALIAS)
    with server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
        url = f"http://{server.get_container_host_ip()}:{server.get_exposed_port(5000)}"
        name = f"diabetes-auth-{suffix}"
        with tracking_uri(url):
            register(name, forest_model, diabetes_data)
        yield f"models:/{name}@champion", f"http://{AUTH_ALIAS}:5000"


def test_model_uri_with_credentials(
    inference_image: str, docker_network, auth_champion, forest_model, diabetes_data
) -> None:
    model_uri, tracking = auth_champion
    env = {
        "MODEL_URI": model_uri,
        "MLFLOW_TRACKING_URI": tracking,
        "MLFLOW_TRACKING_USERNAME": ADMIN[0],
        "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
    }
    with running_server(inference_image, env, network=docker_network) as server:
        predicts_like(server, forest_model, diabetes_data)
        assert ADMIN[1] not in server.logs()


def test_model_uri_without_credentials_stops_with_one_line(
    inference_image: str, docker_network, auth_champion
) -> None:
    model_uri, tracking = auth_champion
    env = {"MODEL_URI": model_uri, "MLFLOW_TRACKING_URI": tracking}
    status, logs = serve_to_exit(inference_image, env=env, network=docker_network, timeout=180)
    assert status != 0
    assert f"mlstack-inference: error: cannot download MODEL_URI={model_uri}" in logs
    assert "error code 401" in logs, logs


# --- the training image's model ----------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_model_dir(training_image: str, tmp_path_factory) -> Path:
    """A training job's /opt/ml/model, tarred into model.tar.gz and extracted as SageMaker does."""
    from training.helpers import FEATURES, TARGET, run_training

    from mlstack.training.paths import OptML
    from support.data import write_channels

    opt_ml = OptML(tmp_path_factory.mktemp("opt_ml") / "opt_ml")
    config = opt_ml.hyperparameters_file.parent
    config.mkdir(parents=True)
    opt_ml.hyperparameters_file.write_text(
        json.dumps({"n-estimators": "100", "features": FEATURES, "target": TARGET})
    )
    opt_ml.input_data_config_file.write_text(
        json.dumps({name: {"TrainingInputMode": "File"} for name in ("train", "test")})
    )
    write_channels(opt_ml.channel("train").parent)
    opt_ml.model_dir.mkdir()
    (opt_ml.root / "output").mkdir()
    exited = run_training(training_image, opt_ml, timeout=300)
    assert exited.status == 0, exited.logs
    workdir = tmp_path_factory.mktemp("sagemaker")
    tar_model(opt_ml.model_dir, workdir / "model.tar.gz")
    extracted = workdir / "model"
    extracted.mkdir()
    with tarfile.open(workdir / "model.tar.gz") as archive:
        archive.extractall(extracted, filter="data")
    make_readable(extracted)
    shutil.rmtree(opt_ml.root, ignore_errors=True)
    return extracted


def test_serves_the_training_jobs_model(
    inference_image: str, trained_model_dir: Path, diabetes_data: Diabetes
) -> None:
    estimator = mlflow.pyfunc.load_model(str(trained_model_dir)).get_raw_model()
    columns = list(getattr(estimator, "feature_names_in_", diabetes_data.test.columns))
    rows = diabetes_data.test[columns]
    expected = estimator.predict(rows)
    with running_server(
        inference_image, {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}, trained_model_dir
    ) as server:
        one = server.invoke(rows.iloc[[0]].to_json(orient="split"))
        assert one.status_code == 200, one.text
        whole = server.invoke(full_split(rows))
        assert whole.status_code == 200, whole.text
        assert relative_error(np.array(whole.json()["predictions"]), expected) <= 1e-9
        assert "fast path on (RandomForestRegressor" in server.logs()
