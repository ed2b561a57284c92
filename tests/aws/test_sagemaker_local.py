"""`mlstack aws sagemaker-local` end to end, no AWS account: SageMaker SDK v3 runs the
training image against the test session's tracking server (ModelTrainer, LOCAL_CONTAINER),
then its local session serves the job's model.tar.gz with the inference image, which answers
the reference's request. Afterwards no container is left, no network that was not there,
and nothing was written into the directory the command ran in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import docker
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from support.data import write_channels
from support.images import ROOT
from support.metrics import assert_metrics_match

pytestmark = [pytest.mark.aws, pytest.mark.docker]

EXPERIMENT = "sagemaker-local-test"
NETWORK = "sagemaker-local"


def network_exists() -> bool:
    found = subprocess.run(["docker", "network", "inspect", NETWORK], capture_output=True)
    return found.returncode == 0


def all_containers() -> set[str]:
    return {c.id for c in docker.from_env().containers.list(all=True)}


def run_sagemaker_local(run_aws, env: dict[str, str], tmp_path: Path) -> dict:
    """The command in an empty directory; its summary. Checks that it left nothing behind:
    no container, no network that was not there, no file where it ran, no container root."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    containers, network = all_containers(), network_exists()
    result = run_aws("sagemaker-local", env, timeout=900, cwd=cwd)
    log = tmp_path / "sagemaker_local.log"
    log.write_text(result.stderr + "\n--- stdout:\n" + result.stdout)
    assert result.returncode == 0, f"{log}: {result.stderr[-3000:]}"
    assert all_containers() <= containers
    assert network_exists() == network
    assert not os.listdir(cwd)
    assert not os.listdir(tmp_path / "out" / "work")
    return json.loads(result.stdout)


def unpacked(summary: dict, into: Path) -> Path:
    """The job's model.tar.gz (summary's model_data), unpacked: the MLflow model at its top."""
    tarball = Path(summary["model_data"].removeprefix("file://"))
    into.mkdir()
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    return into


def assert_served_as_the_model_predicts(summary: dict, model_dir: Path) -> None:
    """The endpoint's answer to the reference's request is the model's own prediction."""
    payload = summary["payload"]
    request = pd.DataFrame(payload["data"], columns=payload["columns"], index=payload["index"])
    expected = mlflow.pyfunc.load_model(str(model_dir)).predict(request)
    assert summary["prediction"]["predictions"] == list(expected)


@pytest.fixture
def local_env(training_image, inference_image, tracking_server, tmp_path, script_env):
    """The command's settings, with these extra; every AWS endpoint a closed port (it must
    call none)."""
    data = write_channels(tmp_path / "data")

    def env(**extra: str) -> dict[str, str]:
        return script_env(
            MLFLOW_TRACKING_URI=tracking_server.uri_from_host,
            DATA_DIR=str(data),
            SAGEMAKER_LOCAL_OUTPUT=str(tmp_path / "out"),
            TRAINING_IMAGE=training_image,
            INFERENCE_IMAGE=inference_image,
            AWS_ENDPOINT_URL="http://127.0.0.1:9",
            **extra,
        )

    return env


def test_train_track_deploy_and_predict(local_env, tracking_server, tmp_path, run_aws):
    env = local_env(
        EXPERIMENT_NAME=EXPERIMENT,
        N_ESTIMATORS="20",
        RANDOM_STATE="7",
    )
    summary = run_sagemaker_local(run_aws, env, tmp_path)

    # The training job's run is in the tracking server, finished, with the job's metrics.
    client = MlflowClient(tracking_server.uri_from_host)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [run] = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`sagemaker.training_job_name` = '{summary['training_job_name']}'",
    )
    assert run.info.status == "FINISHED"
    assert run.data.params["n-estimators"] == "20"
    model_dir = unpacked(summary, tmp_path / "model")
    test_csv = tmp_path / "data" / "test" / "test.csv"  # the channel local_env wrote
    assert_metrics_match(run.data.metrics, model_dir, test_csv)

    # The model came back as model.tar.gz, and the local endpoint answered the reference's
    # request (one row, the features only) with one prediction.
    assert summary["training_job_name"].startswith("mlstack-local-")
    model = Path(summary["model_data"].removeprefix("file://"))
    assert model == tmp_path / "out" / summary["training_job_name"] / "model.tar.gz"
    assert model.is_file()
    assert summary["payload"]["columns"] == [
        "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"
    ]  # fmt: skip
    assert_served_as_the_model_predicts(summary, model_dir)
    assert summary["seconds"]["training"] > 0 and summary["seconds"]["endpoint"] > 0


def test_script_mode_with_entry_point_and_source_dir(local_env, tracking_server, tmp_path, run_aws):
    """A SageMaker scikit-learn script through v3's SourceCode (its requirements.txt with an
    MLflow 2.x client installed by v3's driver): tracked and tagged, its model.tar.gz served
    by the inference image."""
    experiment = f"{EXPERIMENT}-script"
    env = local_env(
        EXPERIMENT_NAME=experiment,
        N_ESTIMATORS="25",
        SOURCE_DIR=str(ROOT / "examples" / "gradient_boosting"),
        ENTRY_POINT="train.py",
    )
    summary = run_sagemaker_local(run_aws, env, tmp_path)

    client = MlflowClient(tracking_server.uri_from_host)
    found = client.get_experiment_by_name(experiment)
    [run] = client.search_runs([found.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["sagemaker.training_job_name"] == summary["training_job_name"]
    assert run.data.tags["mlstack.entry_point"] == "train.py"
    assert run.data.params["n-estimators"] == "25"
    model_dir = unpacked(summary, tmp_path / "model")
    assert_metrics_match(run.data.metrics, model_dir, tmp_path / "data" / "test" / "test.csv")
    assert_served_as_the_model_predicts(summary, model_dir)


def test_a_failing_script_is_one_line(local_env, tmp_path, run_aws):
    """A script that fails: one line naming the job and how it ended (the script's own words
    are in its log above), exit 1, and still nothing left behind."""
    source = tmp_path / "failing"
    source.mkdir()
    (source / "train.py").write_text("raise SystemExit('no data for this model')\n")
    env = local_env(
        SOURCE_DIR=str(source),
        ENTRY_POINT="train.py",
    )
    containers, cwd = all_containers(), tmp_path / "cwd"
    cwd.mkdir()
    result = run_aws("sagemaker-local", env, timeout=900, cwd=cwd)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r"mlstack: error: the training job mlstack-local-\d{14} failed: "
        r"the script exited with status 1; its log is above",
        last,
    )
    assert "no data for this model" in result.stderr  # the script's own words, in its log
    assert all_containers() <= containers
    assert not os.listdir(cwd)
