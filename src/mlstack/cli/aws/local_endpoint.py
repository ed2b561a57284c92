"""A local endpoint through the SageMaker Python SDK v3's local session: the inference image
serving a model directory or model.tar.gz, asked one request, then torn down.

The local session runs SageMaker's hosting contract with `docker compose` (`docker run IMAGE
serve`, the model mounted at /opt/ml/model, GET /ping until 200, POST /invocations); its
`sagemaker_client` and `sagemaker_runtime_client` take the SageMaker API's own requests
(CreateModel, CreateEndpointConfig, CreateEndpoint, InvokeEndpoint). No AWS call is made:
the boto session has no credentials (the SDK would copy any it found into the containers),
the SDK's telemetry is off, and the image is used as it is when it is not an ECR URI.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.cli.aws.common import SDK_CONFIG, AwsScriptError
from mlstack.cli.channels import CONTENT_TYPE

VARIANT = "AllTraffic"


@dataclass(frozen=True)
class Answer:
    """What the endpoint answered to the request."""

    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


def credential_free_session(region_name: str):
    """A boto3 session with no credentials at all: local mode needs none, and the SDK would
    copy any it finds into the containers' environment and its compose files."""
    import boto3
    import botocore.session
    from botocore.credentials import CredentialResolver

    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver(providers=[]))
    return boto3.Session(botocore_session=core, region_name=region_name)


def local_session(region: str, container_root: Path, serving_port: int):
    """SDK v3's LocalSession: file:// code and data, compose files (and root-owned files the
    containers write) under container_root, the endpoint on serving_port of this machine."""
    from sagemaker.core.local.local_session import LocalSession

    session = LocalSession(
        boto_session=credential_free_session(region), sagemaker_config=SDK_CONFIG
    )
    session.config = {
        "local": {
            "local_code": True,
            "serving_port": serving_port,
            "container_root": str(container_root),
        }
    }
    return session


def quiet_hosting_thread_exit() -> None:
    """The SDK's serving thread raises when its endpoint is deleted (compose is killed):
    keep that expected exit from printing a traceback."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.thread).__name__ == "_HostingContainer" and args.exc_type is RuntimeError:
            return
        previous(args)

    threading.excepthook = hook


def invoke_once(
    session: Any,
    image: str,
    model_url: str,
    name: str,
    body: str,
    content_type: str = CONTENT_TYPE,
) -> Answer:
    """Serve model_url (file:// model directory or model.tar.gz) with image as endpoint
    `name`, send body once, delete the endpoint, its config and the model; the answer."""
    client = session.sagemaker_client
    client.create_model(
        ModelName=name,
        PrimaryContainer={"Image": image, "ModelDataUrl": model_url, "Environment": {}},
    )
    client.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": VARIANT,
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "local",
            }
        ],
    )
    try:
        client.create_endpoint(EndpointName=name, EndpointConfigName=name)  # waits for /ping
        response = session.sagemaker_runtime_client.invoke_endpoint(
            EndpointName=name, ContentType=content_type, Accept=content_type, Body=body
        )
        answer = Answer(
            status=response["ResponseMetadata"]["HTTPStatusCode"],
            body=response["Body"].read().decode(),
        )
    except RuntimeError as error:  # how the SDK reports an endpoint that never answered /ping
        raise AwsScriptError(
            f"the local endpoint failed: {str(error).strip().splitlines()[-1]}; "
            "the containers' logs are above"
        ) from None
    finally:
        client.delete_endpoint(EndpointName=name)  # stops the serving container
        with contextlib.suppress(Exception):
            client.delete_endpoint_config(EndpointConfigName=name)
            client.delete_model(ModelName=name)
    if answer.status != 200:
        raise AwsScriptError(
            f"the local endpoint answered {answer.status}: {answer.body.strip()[:300]}"
        )
    return answer
