"""make deploy-endpoint and make invoke-endpoint: the AWS calls, checked against moto.

The model comes from the session's tracking server with access control on, as users run it:
deploy-endpoint logs in, resolves MODEL_NAME@champion and downloads the version through the
server's artifact proxy (the files are in the server's bucket). A real endpoint needs an AWS
account (SageMaker hosting is not emulated beyond its API); the local-mode test serves the
same model.tar.gz layout with the real inference image.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from sklearn.tree import DecisionTreeRegressor

from mlstack.cli.aws.common import sagemaker_name
from mlstack.cli.channels import reference_payload, target_and_features
from support.stack import AuthServer, point_mlflow_at

pytestmark = [pytest.mark.aws, pytest.mark.docker]

MODEL = "endpoint-test-rf"
ROLE = "arn:aws:iam::123456789012:role/mlstack-sagemaker"
COLUMNS = ["age", "bmi", "bp"]
TARGET = "progression"


@pytest.fixture
def test_csv(tmp_path: Path) -> Path:
    path = tmp_path / "test.csv"
    pd.DataFrame(
        {"age": [59.0, 48.0], "bmi": [32.1, 21.6], "bp": [101.0, 87.0], TARGET: [151.0, 75.0]}
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def registry(auth_server: AuthServer) -> dict[str, str]:
    """MODEL@champion, a small scikit-learn model, logged by the admin into the session's
    tracking server with access control (its files in the bucket, behind the server's
    proxy); the MLflow settings deploy-endpoint runs with, the admin's login among them, as
    the Makefile exports them."""
    url = auth_server.uri_from_host
    settings = {
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_USERNAME": auth_server.admin[0],
        "MLFLOW_TRACKING_PASSWORD": auth_server.admin[1],
    }
    frame = pd.DataFrame({"age": [59.0, 48.0, 72.0], "bmi": [32.1, 21.6, 30.5], "bp": [1, 2, 3]})
    model = DecisionTreeRegressor(random_state=0).fit(frame, [151.0, 75.0, 141.0])
    # Pointed at the server for this fixture only: restoring "the previous URI" by hand
    # exported MLflow's default into MLFLOW_TRACKING_URI for every later test.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        point_mlflow_at(patch, url)
        client = MlflowClient(url)
        experiment = client.create_experiment(f"endpoint-{uuid.uuid4().hex[:8]}")
        with mlflow.start_run(experiment_id=experiment):
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=MODEL,
                pip_requirements=["scikit-learn"],
                skops_trusted_types=["sklearn.tree._tree.Tree"],
            )
        client.set_registered_model_alias(MODEL, "champion", info.registered_model_version)
    return settings


def test_deploy_creates_model_config_and_endpoint(moto, registry, run_aws, tmp_path):
    moto.client("s3").create_bucket(Bucket="mlstack-models")
    env = moto.env(
        **registry,
        MODEL_NAME=MODEL,
        SAGEMAKER_ROLE_ARN=ROLE,
        MODEL_S3_URI="s3://mlstack-models/endpoints",
    )
    result = run_aws("deploy-endpoint", env)
    assert result.returncode == 0, result.stderr[-3000:]
    endpoint = result.stdout.strip()
    assert endpoint == f"mlstack-{MODEL}"

    sm = moto.client("sagemaker")
    described = sm.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.large", 1)
    # SageMaker's own Data Capture, beside the models, in the format `mlstack monitor` reads.
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": "s3://mlstack-models/data-capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
    }
    assert f"--capture-destination s3://mlstack-models/data-capture --endpoint {endpoint}" in (
        result.stderr
    )
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["ExecutionRoleArn"] == ROLE
    container = model["PrimaryContainer"]
    # The image `make push` pushed, in the caller's account and region.
    assert container["Image"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlstack/inference:"
        + (Path(__file__).resolve().parents[2] / "VERSION").read_text().strip()
    )
    assert container["ModelDataUrl"] == f"s3://mlstack-models/endpoints/{MODEL}/1/model.tar.gz"

    # model.tar.gz: the MLflow model at its top, loadable as it is.
    body = (
        moto.client("s3")
        .get_object(Bucket="mlstack-models", Key=f"endpoints/{MODEL}/1/model.tar.gz")["Body"]
        .read()
    )
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        names = archive.getnames()
        assert "MLmodel" in names
        assert not any(name.startswith(("/", "..")) for name in names)
        archive.extractall(tmp_path / "extracted", filter="data")
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "extracted"))
    frame = pd.DataFrame({"age": [59.0], "bmi": [32.1], "bp": [1]})
    assert loaded.predict(frame).tolist() == [151.0]


def test_deploy_a_model_image_uploads_nothing(moto, registry, run_aws):
    """MODEL_IMAGE_URI: the model is in the image, so the Model has no ModelDataUrl."""
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlstack/model-x:1"
    env = moto.env(
        **registry,
        MODEL_NAME=MODEL,
        SAGEMAKER_ROLE_ARN=ROLE,
        MODEL_IMAGE_URI=image,
        ENDPOINT_NAME="model-image-endpoint",
    )
    result = run_aws("deploy-endpoint", env)
    assert result.returncode == 0, result.stderr[-3000:]
    sm = moto.client("sagemaker")
    described = sm.describe_endpoint(EndpointName=result.stdout.strip())
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    container = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])[
        "PrimaryContainer"
    ]
    assert container["Image"] == image
    assert "ModelDataUrl" not in container
    assert not config.get("DataCaptureConfig")  # no MODEL_S3_URI, no CAPTURE_DESTINATION


def test_deploy_names_a_missing_alias(moto, registry, run_aws):
    env = moto.env(
        **registry,
        MODEL_NAME=MODEL,
        MODEL_ALIAS="nope",
        SAGEMAKER_ROLE_ARN=ROLE,
        MODEL_S3_URI="s3://mlstack-models/endpoints",
    )
    result = run_aws("deploy-endpoint", env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mlstack: error: no model version {MODEL}@nope")


def test_deploy_needs_its_settings(moto, run_aws):
    result = run_aws("deploy-endpoint", moto.env(MODEL_NAME=MODEL))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "mlstack: error: MLFLOW_TRACKING_URI is not set (see docs/configuration.md)"
    )


def test_reference_payload(test_csv):
    payload = reference_payload(test_csv, TARGET)
    frame = pd.read_csv(test_csv)
    assert payload == frame[COLUMNS].iloc[[0]].to_json(orient="split")
    assert json.loads(payload) == {"columns": COLUMNS, "index": [0], "data": [[59.0, 32.1, 101.0]]}
    assert json.loads(reference_payload(test_csv, TARGET, ["bp"]))["columns"] == ["bp"]


def test_invoke_sends_the_payload_and_prints_the_answer(moto, run_aws, test_csv):
    answer = {"predictions": [151.0]}
    requests.post(
        f"{moto.endpoint}/moto-api/static/sagemaker/endpoint-results",
        json={"results": [{"Body": json.dumps(answer), "ContentType": "application/json"}]},
        timeout=10,
    ).raise_for_status()
    env = moto.env(MODEL_NAME=MODEL, TEST_CSV=str(test_csv), TARGET=TARGET)
    result = run_aws("invoke", env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == answer
    payload = reference_payload(test_csv, TARGET)
    assert f"POST mlstack-{MODEL}: {payload}" in result.stderr


def test_target_and_features_follow_prepare_data(tmp_path):
    (tmp_path / "hyperparameters.json").write_text(
        json.dumps({"features": "age bmi", "target": TARGET})
    )
    assert target_and_features(tmp_path) == (TARGET, ["age", "bmi"])
    assert target_and_features(tmp_path / "elsewhere") == ("progression", None)
    # TARGET names another target: the file's features do not apply.
    assert target_and_features(tmp_path, target="bp") == ("bp", None)
    assert target_and_features(tmp_path, target="bp", features="age, bmi") == ("bp", ["age", "bmi"])


def test_sagemaker_names():
    assert sagemaker_name("mlstack", "My_Model.v2") == "mlstack-My-Model-v2"
    assert len(sagemaker_name("x" * 100)) == 63
