"""The tuning command: its SageMaker calls checked against moto, its MLflow runs in the
session's tracking server with access control on, as users run it: logged in as a user who
may edit only the tuning's experiment (what docs/aws.md says to give the jobs). Real tuning
needs an AWS account; moto finishes the job at once."""

from __future__ import annotations

import io
import secrets
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.server import get_app_client

from mlstack.cli.tuning import METRIC_DEFINITIONS, OBJECTIVE, RANGES
from support.stack import AuthServer

pytestmark = [pytest.mark.aws, pytest.mark.docker]

JOB = "mlstack-tune-test"
ROLE = "arn:aws:iam::123456789012:role/mlstack-sagemaker"


@dataclass(frozen=True)
class Store:
    """Where the tuning tracks: the server, its experiment, the user the command logs in as."""

    uri: str
    experiment: str
    user: tuple[str, str]
    admin: MlflowClient  # reads back what the command did


@pytest.fixture
def store(auth_server: AuthServer, monkeypatch: pytest.MonkeyPatch) -> Store:
    """An experiment of the test's own, holding the runs the training image makes (two of this
    tuning job, one of another job), and a user with EDIT on it alone."""
    url = auth_server.uri_from_host
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", auth_server.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", auth_server.admin[1])
    admin = MlflowClient(url)
    name = f"tuning-test-{uuid.uuid4().hex[:8]}"
    experiment = admin.create_experiment(name)
    for job in (f"{JOB}-001-0123abcd", f"{JOB}-002-89abcdef", f"{JOB}-other-001-0123abcd"):
        admin.create_run(experiment, run_name=job, tags={"sagemaker.training_job_name": job})
    user = (f"tuner-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(15))
    users = get_app_client("basic-auth", tracking_uri=url)
    users.create_user(*user)
    users.grant_user_permission(user[0], "experiment", experiment, "EDIT")
    return Store(url, name, user, admin)


def tuning_env(moto, store: Store, **extra: str) -> dict[str, str]:
    settings = {
        "MLFLOW_TRACKING_URI": store.uri,
        "MLFLOW_TRACKING_USERNAME": store.user[0],
        "MLFLOW_TRACKING_PASSWORD": store.user[1],
        "TRAINING_TRACKING_URI": "http://mlflow.internal:5000",
        "EXPERIMENT_NAME": store.experiment,
        "SAGEMAKER_ROLE_ARN": ROLE,
        "DATA_S3_URI": "s3://mlstack-data/diabetes/",
        "OUTPUT_S3_URI": "s3://mlstack-models/tuning",
        "TUNING_JOB_NAME": JOB,
        "FEATURES": "age bmi bp",
        "TUNING_POLL_SECONDS": "1",
        # SDK v3 checks the role with iam:SimulatePrincipalPolicy, which moto 5.2.5 lacks.
        "SAGEMAKER_VALIDATE_ROLE": "false",
    }
    settings.update(extra)
    return moto.env(**settings)


def test_tuning_job_as_the_reference_defines_it(moto, store, run_aws):
    env = tuning_env(
        moto,
        store,
        SAGEMAKER_SUBNETS="subnet-1,subnet-2",
        SAGEMAKER_SECURITY_GROUP_IDS="sg-1",
        TUNING_MAX_JOBS="6",
        TUNING_MAX_PARALLEL_JOBS="3",
    )
    result = run_aws("tune", env)
    assert result.returncode == 0, result.stderr[-3000:]

    job = moto.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=JOB
    )
    config = job["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": OBJECTIVE,
    }
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 3}
    ranges = {r["Name"]: r for r in config["ParameterRanges"]["IntegerParameterRanges"]}
    assert {name: (r["MinValue"], r["MaxValue"]) for name, r in ranges.items()} == {
        name: (str(low), str(high)) for name, (low, high) in RANGES.items()
    }

    definition = job["TrainingJobDefinition"]
    algorithm = definition["AlgorithmSpecification"]
    assert algorithm["TrainingImage"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlstack/training:"
        + (Path(__file__).resolve().parents[2] / "VERSION").read_text().strip()
    )
    assert algorithm["MetricDefinitions"] == METRIC_DEFINITIONS  # the one definition
    static = definition["StaticHyperParameters"]
    assert static["tracking_uri"] == "http://mlflow.internal:5000"
    assert static["experiment_name"] == store.experiment
    assert static["target"] == "progression"
    assert static["features"] == "age bmi bp"
    channels = {c["ChannelName"]: c for c in definition["InputDataConfig"]}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://mlstack-data/diabetes/train"
    )
    assert channels["test"]["DataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://mlstack-data/diabetes/test"
    )
    assert definition["OutputDataConfig"]["S3OutputPath"] == "s3://mlstack-models/tuning"
    assert definition["RoleArn"] == ROLE
    assert definition["VpcConfig"] == {
        "Subnets": ["subnet-1", "subnet-2"],
        "SecurityGroupIds": ["sg-1"],
    }

    # The jobs log in as the command's user: SageMaker hands them its credentials, and the
    # command says where anyone may read them.
    assert "DescribeTrainingJob shows; use a user limited to the experiment" in result.stderr
    # MLflow: one parent run, the tuning job's two runs under it, the other job's not.
    client = store.admin
    experiment = client.get_experiment_by_name(store.experiment).experiment_id
    runs = {run.info.run_name: run for run in client.search_runs([experiment])}
    parent = runs[JOB]
    assert parent.info.status == "FINISHED"
    assert static["parent-run-id"] == parent.info.run_id
    assert parent.data.tags["sagemaker.tuning_job_name"] == JOB
    assert parent.data.params["range.n-estimators"] == "50-200"
    assert "sagemaker.best_training_job" in parent.data.tags
    for name in (f"{JOB}-001-0123abcd", f"{JOB}-002-89abcdef"):
        assert runs[name].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in runs[f"{JOB}-other-001-0123abcd"].data.tags
    assert result.stdout.strip() == parent.data.tags["sagemaker.best_training_job"]


def test_tuning_checks_its_settings(moto, store, run_aws):
    result = run_aws("tune", tuning_env(moto, store, TUNING_JOB_NAME="no_underscores_allowed"))
    assert result.returncode == 1
    assert "TUNING_JOB_NAME must be" in result.stderr.strip().splitlines()[-1]
    half_vpc = tuning_env(moto, store, SAGEMAKER_SUBNETS="subnet-1")
    result = run_aws("tune", half_vpc)
    assert result.returncode == 1
    assert "SAGEMAKER_SECURITY_GROUP_IDS" in result.stderr.strip().splitlines()[-1]
    assert not moto.client("sagemaker").list_hyper_parameter_tuning_jobs()[
        "HyperParameterTuningJobSummaries"
    ]


def test_tuning_a_users_script(moto, store, run_aws):
    """SOURCE_DIR / ENTRY_POINT: SDK v3 uploads the source into the output bucket and names
    it in the reserved hyperparameters, which the training image's script mode reads."""
    moto.client("s3").create_bucket(Bucket="mlstack-models")
    source = Path(__file__).resolve().parents[2] / "examples" / "gradient_boosting"
    env = tuning_env(moto, store, SOURCE_DIR=str(source), ENTRY_POINT="train.py")
    result = run_aws("tune", env)
    assert result.returncode == 0, result.stderr[-3000:]
    job = moto.client("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=JOB
    )
    static = job["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["sagemaker_program"] == "train.py"
    submit = static["sagemaker_submit_directory"]
    assert submit.startswith("s3://mlstack-models/") and submit.endswith("/sourcedir.tar.gz")
    bucket, key = submit[len("s3://") :].split("/", 1)
    archive = moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    assert {"train.py", "requirements.txt"} <= set(names)
    assert static["target"] == "progression"  # v3 sends values as they are (v2 JSON-encoded)
    # Nothing else was staged outside the output bucket: v3 made no bucket of its own.
    assert [b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]] == ["mlstack-models"]


def test_tuning_needs_both_source_dir_and_entry_point(moto, store, run_aws):
    result = run_aws("tune", tuning_env(moto, store, ENTRY_POINT="train.py"))
    assert result.returncode == 1
    assert "set both SOURCE_DIR" in result.stderr.strip().splitlines()[-1]
