"""SageMaker local mode end to end, no AWS account: the SDK runs the training image against
the test session's tracking server, then serves the job's model.tar.gz with the inference
image, which answers the reference's request."""

from __future__ import annotations

import json
import subprocess

import docker
import pytest
from mlflow import MlflowClient

from mlstack.cli import data as prepare_data
from support.images import ROOT, build_project_image

pytestmark = [pytest.mark.aws, pytest.mark.docker]

EXPERIMENT = "sagemaker-local-test"
LABEL = "org.mlstack.sagemaker-local.run"


def built(name: str) -> str:
    """The project's image, or a skip that says why it is missing."""
    try:
        return build_project_image(name)
    except Exception as error:  # the images are built by their own issues' code
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        pytest.skip(f"the {name} image cannot be built here ({first}): local mode needs it")


@pytest.fixture(scope="module")
def local_mode_images() -> tuple[str, str]:
    return built("training"), built("inference")


def test_train_track_deploy_and_predict(
    local_mode_images, tracking_server, tmp_path, run_aws, script_env
):
    training, inference = local_mode_images
    data = tmp_path / "data"
    assert prepare_data.main(["--dataset", "diabetes", "--output", str(data)]) == 0
    network_before = (
        subprocess.run(
            ["docker", "network", "inspect", "sagemaker-local"], capture_output=True
        ).returncode
        == 0
    )
    env = script_env(
        MLFLOW_TRACKING_URI=tracking_server.uri_from_host,
        EXPERIMENT_NAME=EXPERIMENT,
        DATA_DIR=str(data),
        SAGEMAKER_LOCAL_OUTPUT=str(tmp_path / "out"),
        TRAINING_IMAGE=training,
        INFERENCE_IMAGE=inference,
        N_ESTIMATORS="20",
        RANDOM_STATE="7",
    )
    result = run_aws("sagemaker-local", env, timeout=900)
    (tmp_path / "sagemaker_local.log").write_text(result.stderr + "\n--- stdout:\n" + result.stdout)
    assert result.returncode == 0, f"{tmp_path}/sagemaker_local.log: {result.stderr[-3000:]}"
    summary = json.loads(result.stdout)

    # The training job's run is in the tracking server, finished, with the job's metrics.
    client = MlflowClient(tracking_server.uri_from_host)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [run] = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`sagemaker.training_job_name` = '{summary['training_job_name']}'",
    )
    assert run.info.status == "FINISHED"
    assert run.data.params["n-estimators"] == "20"
    assert run.data.metrics["AE-at-50th-percentile"] > 0

    # The model came back as model.tar.gz, and the local endpoint answered the reference's
    # request (one row, the features only) with one prediction.
    assert summary["model_data"].startswith("file://")
    assert summary["model_data"].endswith("/model.tar.gz")
    assert summary["payload"]["columns"] == [
        "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"
    ]  # fmt: skip
    [prediction] = summary["prediction"]["predictions"]
    assert 0 < float(prediction) < 400

    # Nothing left behind: no labelled container, and no network unless there was one.
    leftover = docker.from_env().containers.list(all=True, filters={"label": LABEL})
    assert not leftover
    network_after = (
        subprocess.run(
            ["docker", "network", "inspect", "sagemaker-local"], capture_output=True
        ).returncode
        == 0
    )
    assert network_after == network_before


def test_script_mode_with_entry_point_and_source_dir(
    local_mode_images, tracking_server, tmp_path, run_aws, script_env
):
    """A SageMaker scikit-learn script through the SDK's entry_point / source_dir: tracked
    and tagged by the image, its model.tar.gz served by the inference image."""
    training, inference = local_mode_images
    data = tmp_path / "data"
    assert prepare_data.main(["--dataset", "diabetes", "--output", str(data)]) == 0
    experiment = f"{EXPERIMENT}-script"
    env = script_env(
        MLFLOW_TRACKING_URI=tracking_server.uri_from_host,
        EXPERIMENT_NAME=experiment,
        DATA_DIR=str(data),
        SAGEMAKER_LOCAL_OUTPUT=str(tmp_path / "out"),
        TRAINING_IMAGE=training,
        INFERENCE_IMAGE=inference,
        N_ESTIMATORS="25",
        SOURCE_DIR=str(ROOT / "examples" / "gradient_boosting"),
        ENTRY_POINT="train.py",
    )
    result = run_aws("sagemaker-local", env, timeout=900)
    (tmp_path / "sagemaker_local.log").write_text(result.stderr + "\n--- stdout:\n" + result.stdout)
    assert result.returncode == 0, f"{tmp_path}/sagemaker_local.log: {result.stderr[-3000:]}"
    summary = json.loads(result.stdout)
    assert "train.py: started" in result.stderr

    client = MlflowClient(tracking_server.uri_from_host)
    found = client.get_experiment_by_name(experiment)
    [run] = client.search_runs([found.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["sagemaker.training_job_name"] == summary["training_job_name"]
    assert run.data.tags["mlstack.entry_point"] == "train.py"
    assert run.data.params["n-estimators"] == "25"
    assert run.data.metrics["AE-at-50th-percentile"] > 0
    [prediction] = summary["prediction"]["predictions"]
    assert 0 < float(prediction) < 400
    assert not docker.from_env().containers.list(all=True, filters={"label": LABEL})
