"""`mlstack aws deploy-endpoint` (`make deploy-endpoint`): deploy a registered MLflow model
to a SageMaker real-time endpoint.

Resolves MODEL_NAME@MODEL_ALIAS in the MLflow registry, downloads that version, packs it as
model.tar.gz (MLmodel at the top, as the inference image expects after SageMaker extracts it
into /opt/ml/model), uploads it under MODEL_S3_URI, then creates a SageMaker Model with the
pushed inference image, a new EndpointConfig, and creates the endpoint or moves it onto the
new config. Waits until the endpoint is InService and prints its name on stdout.

With MODEL_IMAGE_URI (a model image from `make build-model-image`, pushed with `make push
MODEL_IMAGE=...`), the model is already in the image: nothing is uploaded and the SageMaker
Model has no ModelDataUrl (optional in the hosting contract); MODEL_NAME@MODEL_ALIAS still
names and tags the endpoint's resources.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlstack.cli.aws.common import (
    NAME_LIMIT,
    AwsScriptError,
    account_id,
    boto_session,
    ecr_image_uri,
    endpoint_name,
    sagemaker_name,
)
from mlstack.cli.settings import AwsSettings

VARIANT = "AllTraffic"
WAIT_DELAY_S = 30
WAIT_MAX_ATTEMPTS = 60


@dataclass(frozen=True)
class RegisteredModel:
    """One version of a registered model, found through its alias."""

    name: str
    version: str
    alias: str


def resolve(tracking_uri: str, name: str, alias: str) -> RegisteredModel:
    """The version that MODEL_NAME@MODEL_ALIAS points at."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        found = MlflowClient(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException as error:
        raise AwsScriptError(
            f"no model version {name}@{alias} at {tracking_uri}: "
            f"{error.message.strip().splitlines()[0]}"
        ) from None
    return RegisteredModel(name=name, version=str(found.version), alias=alias)


def download(tracking_uri: str, model: RegisteredModel, dest: Path) -> Path:
    """The model version's files (the folder holding MLmodel)."""
    import mlflow.artifacts

    mlflow.set_tracking_uri(tracking_uri)
    path = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model.name}/{model.version}", dst_path=str(dest)
        )
    )
    if not (path / "MLmodel").is_file():
        raise AwsScriptError(f"{model.name} version {model.version} is not an MLflow model")
    return path


def pack(model_dir: Path, tarball: Path) -> Path:
    """model.tar.gz with the model's files at its top (SageMaker extracts it into
    /opt/ml/model, where the inference image looks for MLmodel)."""
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return tarball


def split_s3_uri(uri: str, name: str = "MODEL_S3_URI") -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix without slashes at its ends)."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise AwsScriptError(f"{name} must be s3://bucket[/prefix], got {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


def upload(s3, tarball: Path, s3_uri: str, model: RegisteredModel) -> str:
    """Upload model.tar.gz under s3_uri/NAME/VERSION/; return its s3:// URI."""
    bucket, prefix = split_s3_uri(s3_uri)
    key = "/".join(p for p in (prefix, model.name, model.version, "model.tar.gz") if p)
    s3.upload_file(str(tarball), bucket, key)
    return f"s3://{bucket}/{key}"


def endpoint_exists(sm, name: str) -> bool:
    """Whether the endpoint exists (in any state)."""
    from botocore.exceptions import ClientError

    try:
        sm.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationException":
            return False
        raise
    return True


def capture_config(destination: str, percentage: int) -> dict:
    """SageMaker's own Data Capture for the endpoint (DataCaptureConfig of
    CreateEndpointConfig): requests and responses, CSV and JSON as text, the rest base64 (the
    SDK's DataCaptureConfig defaults), in the format `mlstack monitor` reads."""
    return {
        "EnableCapture": True,
        "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": destination,
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
    }


def capture_destination(settings: AwsSettings) -> str | None:
    """CAPTURE_DESTINATION, else data-capture/ beside the models in MODEL_S3_URI's bucket;
    None (no capture) for a model image without either."""
    if settings.capture_destination:
        split_s3_uri(settings.capture_destination, "CAPTURE_DESTINATION")
        return settings.capture_destination.rstrip("/")
    if settings.model_s3_uri:
        return f"s3://{split_s3_uri(settings.model_s3_uri)[0]}/data-capture"
    return None


def deploy(
    sm,
    endpoint: str,
    model: RegisteredModel,
    image: str,
    model_data: str | None,
    role: str,
    instance_type: str,
    instance_count: int,
    capture: dict | None = None,
) -> str:
    """Create Model and EndpointConfig, then create or update the endpoint; return its ARN."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    # The stamp is kept whole at the end, so the names stay unique when truncated.
    base = sagemaker_name(endpoint, f"v{model.version}")[: NAME_LIMIT - len(stamp) - 1]
    resource = f"{base.rstrip('-')}-{stamp}"
    tags = [
        {"Key": "mlflow.model_name", "Value": model.name},
        {"Key": "mlflow.model_version", "Value": model.version},
        {"Key": "project", "Value": "mlstack"},
    ]
    # SageMaker hosting contract: the image answers GET /ping and POST /invocations on 8080.
    # ModelDataUrl is optional: a model image carries its model.
    container = {"Image": image, "Environment": {}}
    if model_data is not None:
        container["ModelDataUrl"] = model_data
    sm.create_model(
        ModelName=resource, ExecutionRoleArn=role, PrimaryContainer=container, Tags=tags
    )
    sm.create_endpoint_config(
        EndpointConfigName=resource,
        ProductionVariants=[
            {
                "VariantName": VARIANT,
                "ModelName": resource,
                "InitialInstanceCount": instance_count,
                "InstanceType": instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
        Tags=tags,
        **({"DataCaptureConfig": capture} if capture else {}),
    )
    if endpoint_exists(sm, endpoint):
        print(f"updating endpoint {endpoint} to {resource}", file=sys.stderr)
        arn = sm.update_endpoint(EndpointName=endpoint, EndpointConfigName=resource)["EndpointArn"]
    else:
        print(f"creating endpoint {endpoint} ({resource}); this takes minutes", file=sys.stderr)
        arn = sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=resource, Tags=tags)[
            "EndpointArn"
        ]
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=endpoint,
        WaiterConfig={"Delay": WAIT_DELAY_S, "MaxAttempts": WAIT_MAX_ATTEMPTS},
    )
    return arn


def main(settings: AwsSettings) -> None:
    """Resolve MODEL_NAME@MODEL_ALIAS, ship it (model.tar.gz or MODEL_IMAGE_URI), deploy it."""
    tracking_uri = settings.require("mlflow_tracking_uri")
    model_name = settings.require("model_name")
    model = resolve(tracking_uri, model_name, settings.model_alias)
    session = boto_session(settings)
    account_id(session)
    role = settings.require("sagemaker_role_arn")
    endpoint = endpoint_name(settings)
    if settings.model_image_uri:
        image, model_data = settings.model_image_uri, None
    else:
        s3_uri = settings.require("model_s3_uri")
        split_s3_uri(s3_uri)
        image = settings.inference_image_uri or ecr_image_uri(session, "inference")
        with tempfile.TemporaryDirectory(prefix="mlstack-endpoint-") as tmp:
            model_dir = download(tracking_uri, model, Path(tmp) / "model")
            tarball = pack(model_dir, Path(tmp) / "model.tar.gz")
            model_data = upload(session.client("s3"), tarball, s3_uri, model)
    where = model_data or f"in {image}"
    print(f"{model.name}@{model.alias} is version {model.version}: {where}", file=sys.stderr)
    destination = capture_destination(settings)
    capture = None
    if destination:
        capture = capture_config(destination, settings.capture_sampling_percentage)
        print(
            f"data capture: {settings.capture_sampling_percentage}% of requests to "
            f"{destination}/{endpoint}/{VARIANT}/; read it with `mlstack monitor "
            f"--capture-destination {destination} --endpoint {endpoint}`",
            file=sys.stderr,
        )
    deploy(
        session.client("sagemaker"),
        endpoint,
        model,
        image,
        model_data,
        role,
        settings.sagemaker_instance_type,
        settings.sagemaker_instance_count,
        capture,
    )
    print(endpoint)
