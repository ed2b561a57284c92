"""The training image's MLflow plugin without a container: the job as SageMaker's variables
describe it (the toolkit's and SDK v3's driver's), the tags and MLflow settings derived from
it, the run context provider, and the scikit-learn format default."""

from __future__ import annotations

import json
import sys
from types import ModuleType
from typing import Any

import pytest

from mlstack_mlflow_plugin import job, settings, sklearn_format
from mlstack_mlflow_plugin.provider import JobRunContext

# What SDK v3's driver exports (container_drivers/scripts/environment.py) for a local job
# with source code: its own channels in SM_CHANNELS, hyperparameters decoded.
SDK3_ENV = {
    "TRAINING_JOB_NAME": "ref-v3-1",
    "SM_HPS": json.dumps(
        {"tracking_uri": "http://mlflow:5000", "parent-run-id": "p1", "n-estimators": 10}
    ),
    "SM_CHANNELS": json.dumps(["code", "sm_drivers", "test", "train"]),
    "SM_CURRENT_INSTANCE_TYPE": "local_cpu",
    "SM_ENTRY_SCRIPT": "train.py",
    "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
    "SM_TRAINING_ENV": json.dumps({"job_name": "ref-v3-1", "current_instance_type": "local_cpu"}),
}
# What sagemaker-training's Environment.to_env_vars exports under the image's entry point:
# the job's name among the framework parameters, the entry point as SM_USER_ENTRY_POINT.
TOOLKIT_ENV = {
    "SM_HPS": json.dumps({"experiment_name": '"exp"', "n-estimators": "10"}),
    "SM_CHANNELS": json.dumps(["test", "train"]),
    "SM_CURRENT_INSTANCE_TYPE": "local",
    "SM_USER_ENTRY_POINT": "train.py",
    "SM_FRAMEWORK_PARAMS": json.dumps({"sagemaker_job_name": "train-1"}),
    "SM_TRAINING_ENV": json.dumps({"hyperparameters": {}, "job_name": None}),
    "MLSTACK_JOB_KEY": "k1",
    "AWS_REGION": "eu-west-1",
    "MLSTACK_IMAGE": "mlstack/training:9.9.9",
}


def test_tags_under_sdk3s_driver() -> None:
    tags = job.run_tags(settings.read(SDK3_ENV))
    assert tags == {
        "mlflow.source.type": "JOB",
        "mlflow.source.name": "ref-v3-1",
        "mlstack.image": "mlstack/training",
        "mlstack.entry_point": "train.py",
        "sagemaker.instance_type": "local_cpu",
        "sagemaker.channels": "test,train",  # not the SDK's own channels
        "sagemaker.training_job_name": "ref-v3-1",
        "mlflow.parentRunId": "p1",
    }


def test_tags_under_the_toolkit() -> None:
    tags = job.run_tags(settings.read(TOOLKIT_ENV))
    assert tags["sagemaker.training_job_name"] == "train-1"
    assert tags["mlflow.source.name"] == (
        "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/train-1"
    )
    assert tags["mlstack.entry_point"] == "train.py"
    assert tags["mlstack.image"] == "mlstack/training:9.9.9"
    assert tags["mlstack.job_key"] == "k1"
    assert "mlflow.parentRunId" not in tags


def test_region_from_either_variable_aws_region_first() -> None:
    assert settings.read({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    both = {"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "eu-west-1"}
    assert settings.read(both).region == "us-east-2"
    assert settings.read({**both, "AWS_REGION": ""}).region == "eu-west-1"


def test_a_job_without_a_name_is_named_as_the_image() -> None:
    tags = job.run_tags(settings.read({"SM_TRAINING_ENV": "{}", "AWS_REGION": "eu-west-1"}))
    assert tags["mlflow.source.name"] == "mlstack-training"
    assert "sagemaker.training_job_name" not in tags


def test_outside_a_job_nothing_applies() -> None:
    environment = settings.read({"SM_TRAINING_ENV": "not json", "SM_HPS": "[1]"})
    assert not environment.in_job
    assert environment.hyperparameters == {}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {**SDK3_ENV, "MLFLOW_TRACKING_URI": "http://other:5000"},
            {"MLFLOW_TRACKING_URI": "http://mlflow:5000"},  # the hyperparameter wins
        ),
        (
            {**TOOLKIT_ENV, "MLFLOW_TRACKING_URI": "http://env:5000"},
            {"MLFLOW_TRACKING_URI": "http://env:5000", "MLFLOW_EXPERIMENT_NAME": "exp"},
        ),
        (
            {
                "SM_TRAINING_ENV": "{}",
                "SM_HPS": json.dumps({"target": "y", "tracking_uri": "http://hp:5000"}),
                "MLFLOW_TRACKING_URI": "http://env:5000",
                "MLFLOW_EXPERIMENT_NAME": "env-exp",
            },
            {"MLFLOW_TRACKING_URI": "http://hp:5000", "MLFLOW_EXPERIMENT_NAME": "env-exp"},
        ),
        (
            {"SM_TRAINING_ENV": "{}", "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data"},
            {
                "MLFLOW_TRACKING_URI": "file:///opt/ml/output/data/mlruns",
                "MLFLOW_ALLOW_FILE_STORE": "true",
            },
        ),
    ],
)
def test_tracking_variables(env: dict[str, str], expected: dict[str, str]) -> None:
    assert job.tracking_variables(settings.read(env)) == expected


def test_provider_is_active_only_inside_a_job(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = JobRunContext()
    monkeypatch.delenv("SM_TRAINING_ENV", raising=False)
    assert not provider.in_context()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # in_context installs its hook
    for name, value in SDK3_ENV.items():
        monkeypatch.setenv(name, value)
    assert provider.in_context()
    assert provider.tags()["mlflow.parentRunId"] == "p1"
    assert sys.excepthook is not sys.__excepthook__


# --- the scikit-learn format default ---------------------------------------------------------


def fake_sklearn(default: object) -> tuple[ModuleType, list[dict[str, Any]]]:
    """A module with mlflow.sklearn's save_model/log_model signatures (the default of
    serialization_format as given), recording what each call receives."""
    calls: list[dict[str, Any]] = []

    def save_model(
        sk_model, path, conda_env=None, serialization_format=default, skops_trusted_types=None
    ):
        calls.append({"format": serialization_format, "trusted": skops_trusted_types})

    def log_model(sk_model, artifact_path=None, serialization_format=default, **kwargs):
        calls.append({"format": serialization_format, "trusted": kwargs.get(TRUSTED)})

    module = ModuleType("fake_sklearn")
    module.save_model, module.log_model = save_model, log_model
    return module, calls


TRUSTED = "skops_trusted_types"


@pytest.mark.parametrize("default", [None, "skops"], ids=["3.17", "3.14"])
def test_a_call_naming_no_format_gets_cloudpickle(default: object) -> None:
    module, calls = fake_sklearn(default)
    sklearn_format.patch(module)
    module.log_model("model", "model")
    module.save_model("model", "/tmp/m")
    assert calls == [{"format": "cloudpickle", "trusted": None}] * 2


@pytest.mark.parametrize("default", [None, "skops"], ids=["3.17", "3.14"])
def test_a_call_naming_a_format_or_trusted_types_gets_what_it_asked(default: object) -> None:
    module, calls = fake_sklearn(default)
    sklearn_format.patch(module)
    module.log_model("model", "model", "skops")
    module.save_model("model", "/tmp/m", serialization_format="pickle")
    module.log_model("model", "model", skops_trusted_types=["sklearn.tree._tree.Tree"])
    module.save_model("model", "/tmp/m", skops_trusted_types=["sklearn.tree._tree.Tree"])
    assert [call["format"] for call in calls] == ["skops", "pickle", default, default]
    assert calls[3]["trusted"] == ["sklearn.tree._tree.Tree"]


def test_a_client_defaulting_to_cloudpickle_is_left_alone() -> None:
    module, _ = fake_sklearn("cloudpickle")  # MLflow 2.x
    save_model = module.save_model
    sklearn_format.patch(module)
    assert module.save_model is save_model


def test_patched_once() -> None:
    module, calls = fake_sklearn(None)
    sklearn_format.patch(module)
    sklearn_format.patch(module)
    module.log_model("model", "model")
    assert calls == [{"format": "cloudpickle", "trusted": None}]


# --- the monitoring baseline of a script's logged model --------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite tracking store for the module (creating its schema takes seconds)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


@pytest.fixture
def job_with_channel(monkeypatch: pytest.MonkeyPatch, tmp_path, store: str) -> Any:
    """Inside a job (the toolkit's variables) whose train channel holds one CSV, with MLflow
    on the SQLite store; Model.log wrapped for the test only."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import model as mlflow_model

    from mlstack_mlflow_plugin import baseline
    from support.stack import point_mlflow_at

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 2)), columns=["a", "b"]).assign(y=rng.normal(size=50))
    (tmp_path / "train").mkdir()
    frame.to_csv(tmp_path / "train" / "train.csv", index=False)
    for name, value in {**TOOLKIT_ENV, "SM_CHANNEL_TRAIN": str(tmp_path / "train")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SM_HPS", json.dumps({"target": "y"}))
    monkeypatch.setattr(mlflow_model.Model, "log", mlflow_model.Model.__dict__["log"])
    baseline.patch(mlflow_model)
    point_mlflow_at(monkeypatch, store)
    experiment = mlflow.MlflowClient().create_experiment(
        f"plugin-{tmp_path.name}", artifact_location=(tmp_path / "art").as_uri()
    )
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
    return frame


def test_a_logged_model_gets_its_baseline_unless_unnamed(job_with_channel, capsys) -> None:
    import mlflow
    from sklearn.linear_model import LinearRegression

    frame = job_with_channel
    model = LinearRegression().fit(frame[["a", "b"]], frame["y"])
    signature = mlflow.models.infer_signature(frame[["a", "b"]], model.predict(frame[["a", "b"]]))
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", signature=signature, pip_requirements=[])
    client = mlflow.MlflowClient()
    paths = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert paths == {"monitoring/baseline.json", "monitoring/reference.csv"}
    path = client.download_artifacts(run.info.run_id, "monitoring/baseline.json")
    with open(path) as file:
        document = json.load(file)
    assert ([f["name"] for f in document["features"]], document["target"]) == (["a", "b"], "y")
    assert document["prediction"] == "prediction" and document["rows"] == 50
    assert "monitoring baseline recorded" in capsys.readouterr().err

    # Without a signature naming the inputs: one line, no baseline, the script goes on.
    with mlflow.start_run() as bare:
        mlflow.sklearn.log_model(model, name="model", pip_requirements=[])
    assert not client.list_artifacts(bare.info.run_id, "monitoring")
    assert "no monitoring baseline: the model's signature names no input columns" in (
        capsys.readouterr().err
    )
