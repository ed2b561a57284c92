"""`mlstack aws sagemaker-local` (`make sagemaker-local`): train and serve with the project's
images through the SageMaker Python SDK v3 in local mode, against the local stack's tracking
server. No AWS account needed.

1. A training job (`ModelTrainer`, training_mode LOCAL_CONTAINER) runs the training image on
   DATA_DIR/train and DATA_DIR/test, tracked at the tracking server; its model.tar.gz is
   copied to SAGEMAKER_LOCAL_OUTPUT/JOB/. With SOURCE_DIR and ENTRY_POINT the job runs that
   script (`SourceCode`, with SOURCE_DIR/requirements.txt installed when there is one): v3
   then starts its own driver in the image instead of the image's entrypoint, and the image's
   MLflow plugin tracks and tags the script's runs from the hyperparameters all the same.
   The script must save an MLflow model into SM_MODEL_DIR for step 2.
2. That model.tar.gz is served by the inference image through v3's local session and sent
   the reference's request (the first test row as `df.iloc[[0]].to_json(orient="split")`).
3. The run's container root (SAGEMAKER_LOCAL_OUTPUT/work/RUN: v3 would use the current
   directory) is removed, with every container started under it and the `sagemaker-local`
   network when this run created it. A JSON summary goes to stdout; the SDK's and
   containers' logs to stderr.

SDK local-mode notes (sagemaker 3.x): it runs `docker compose` (v2) or `docker-compose`; it
needs a region but no credentials (none are given to the containers here); images that are
not ECR URIs are used as they are, without ECR login or pull.

This module is the command: its settings checked, the three steps in order, the clean-up.
The steps live with their concern: the job in `local_training`, the endpoint in
`local_endpoint`, how the containers reach the tracking server (SAGEMAKER_LOCAL_TRACKING_URI
overrides it) and the clean-up in `local_mode`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.cli import docker_engine
from mlstack.cli.aws import local_training
from mlstack.cli.aws.common import AwsScriptError, sagemaker_sdk_logging, source_code
from mlstack.cli.aws.local_endpoint import invoke_once, local_session, quiet_hosting_thread_exit
from mlstack.cli.aws.local_mode import (
    Route,
    release,
    remove_containers_under,
    remove_tree,
    route_to_tracking_server,
)
from mlstack.cli.channels import reference_payload, target_and_features
from mlstack.cli.links import PublicLinks
from mlstack.cli.settings import AwsSettings
from mlstack.core.ports import free_port

DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
DEFAULT_REGION = "us-east-1"  # local mode needs a region, any will do


@dataclass(frozen=True)
class LocalModeRun:
    """Everything a local run needs."""

    training_image: str
    inference_image: str
    tracking_uri: str
    container_tracking_uri: str  # "": found at run time (mlstack.cli.aws.local_mode)
    experiment_name: str
    data_dir: Path
    output_dir: Path
    hyperparameters: dict[str, str]
    target: str
    features: list[str] | None
    region: str
    source_code: Any  # v3's SourceCode for the user's script, or None: the built-in model
    credentials: dict[str, str]  # MLflow's, for the training container


def require_image(tag: str) -> None:
    """The image must be built: local mode would otherwise try to pull it from a registry."""
    if not docker_engine.image_exists(tag):
        raise AwsScriptError(f"image {tag} is not built here: run make build")


def check_tracking_server(uri: str) -> None:
    """The tracking server must answer from here before a job depends on it."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
    except requests.RequestException as error:
        raise AwsScriptError(
            f"the tracking server at {uri} does not answer ({type(error).__name__}): start the "
            "local stack (make local-up) or set MLFLOW_TRACKING_URI"
        ) from None


def local_run(settings: AwsSettings) -> LocalModeRun:
    """Check the settings and what they name (images built, data written, server up)."""
    training, inference = settings.training_image_tag, settings.inference_image_tag
    for tag in (training, inference):
        require_image(tag)
    data_dir = settings.data_dir
    for channel in local_training.CHANNELS:
        if not (data_dir / channel).is_dir():
            raise AwsScriptError(
                f"{data_dir / channel} does not exist: run `make data` "
                f"(mlstack data --dataset diabetes --output {data_dir}) or set DATA_DIR"
            )
    script = source_code(settings)
    tracking_uri = settings.mlflow_tracking_uri or DEFAULT_TRACKING_URI
    check_tracking_server(tracking_uri)
    target, features = target_and_features(data_dir, settings.target, settings.features)
    hyperparameters = {
        "experiment_name": settings.experiment_name,
        "n-estimators": str(settings.n_estimators),
        "min-samples-leaf": str(settings.min_samples_leaf),
        "target": target,
        "features": " ".join(features or []),
        "registered-model-name": settings.registered_model_name,
        "random-state": settings.random_state,
    }
    return LocalModeRun(
        training_image=training,
        inference_image=inference,
        tracking_uri=tracking_uri,
        container_tracking_uri=settings.sagemaker_local_tracking_uri,
        experiment_name=settings.experiment_name,
        data_dir=data_dir.resolve(),
        output_dir=Path(settings.sagemaker_local_output).resolve(),
        hyperparameters={k: v for k, v in hyperparameters.items() if v},
        target=target,
        features=features,
        region=settings.aws_region or DEFAULT_REGION,
        source_code=script,
        credentials=settings.tracking_credentials(),
    )


def run_locally(settings: LocalModeRun, container_root: Path, route: Route) -> dict[str, Any]:
    """Train, keep the model, serve it and send the reference's request; the summary."""
    session = local_session(settings.region, container_root, free_port())
    started = time.monotonic()
    job_name = local_training.train(
        session,
        container_root,
        image=settings.training_image,
        data_dir=settings.data_dir,
        hyperparameters={"tracking_uri": route.uri, **settings.hyperparameters},
        environment=settings.credentials,
        source_code=settings.source_code,
    )
    trained = time.monotonic()
    model = local_training.keep_model(container_root, settings.output_dir, job_name)
    payload = reference_payload(
        settings.data_dir / "test" / "test.csv", settings.target, settings.features
    )
    answer = invoke_once(session, settings.inference_image, model.as_uri(), job_name, payload)
    served = time.monotonic()
    return {
        "training_job_name": job_name,
        "model_data": model.as_uri(),
        "tracking_uri": settings.tracking_uri,
        "experiment_name": settings.experiment_name,
        "payload": json.loads(payload),
        "prediction": answer.json(),
        "seconds": {
            "training": round(trained - started, 1),
            "endpoint": round(served - trained, 1),
        },
    }


def main(aws_settings: AwsSettings) -> None:
    """Train, deploy and predict in SageMaker local mode; print a JSON summary."""
    sagemaker_sdk_logging()
    settings = local_run(aws_settings)
    quiet_hosting_thread_exit()
    container_root = settings.output_dir / "work" / f"mlstack-{uuid.uuid4().hex[:12]}"
    try:
        container_root.mkdir(parents=True)
    except OSError as error:
        raise AwsScriptError(
            f"cannot write into SAGEMAKER_LOCAL_OUTPUT {settings.output_dir}: {error.strerror}"
        ) from None
    route = None
    try:
        route = route_to_tracking_server(
            settings.tracking_uri, settings.training_image, settings.container_tracking_uri
        )
        print(f"tracking at {settings.tracking_uri} (containers: {route.uri})", file=sys.stderr)
        # The SDK streams container logs to stdout; this command keeps stdout for its result,
        # and prints MLflow's run links with the address this machine opens.
        with contextlib.redirect_stdout(PublicLinks(sys.stderr, route.uri, settings.tracking_uri)):
            summary = run_locally(settings, container_root, route)
    finally:
        remove_containers_under(container_root)
        release(route)
        remove_tree(container_root, settings.training_image)
    print(json.dumps(summary, indent=2))
