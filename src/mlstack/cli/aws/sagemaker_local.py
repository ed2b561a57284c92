"""`mlstack aws sagemaker-local` (`make sagemaker-local`): train and serve with the project's
images through the SageMaker Python SDK in local mode, against the local stack's tracking
server. No AWS account needed.

1. A training job (instance_type "local") runs the training image on DATA_DIR/train and
   DATA_DIR/test (file:// channels), tracked at the tracking server; model.tar.gz lands in
   SAGEMAKER_LOCAL_OUTPUT (file:// output_path). With SOURCE_DIR and ENTRY_POINT the job
   runs that script (the estimator's source_dir / entry_point: script mode) instead of the
   image's built-in model; the script must save an MLflow model into SM_MODEL_DIR for step 2.
2. That model.tar.gz is deployed locally with the inference image and sent the reference's
   request (the first test row as `df.iloc[[0]].to_json(orient="split")`).
3. Every container the SDK started is removed, and its `sagemaker-local` network too when
   this run created it. A JSON summary goes to stdout; the SDK's and containers' logs to stderr.

SDK local-mode notes (sagemaker 2.x): it runs `docker compose` when `docker compose version`
says v2, else `docker-compose`; it needs a region but no credentials (none are given to the
containers here); images that are not ECR URIs are used as they are, without ECR login or
pull; its containers join the Docker network `sagemaker-local`, where 127.0.0.1 is the
container itself. So when MLFLOW_TRACKING_URI points at this machine, the container that
publishes that port (the local stack's tracking server) is connected to `sagemaker-local`
for the run (and disconnected after) and reached at its address there, a private address
that MLflow's Host-header check allows; a server outside Docker is reached at the Docker
host's gateway address. SAGEMAKER_LOCAL_TRACKING_URI overrides all of this.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlstack import version
from mlstack.cli.aws.common import (
    SDK_CONFIG,
    AwsScriptError,
    main_wrapper,
    run,
    sagemaker_sdk_logging,
    script_mode,
)
from mlstack.cli.channels import CONTENT_TYPE, reference_payload, target_and_features
from mlstack.cli.settings import AwsSettings
from mlstack.core.ports import free_port

ROLE = "arn:aws:iam::111111111111:role/local-mode-needs-no-role"  # any ARN string will do
LABEL = "org.mlstack.sagemaker-local.run"
NETWORK = "sagemaker-local"  # the SDK's compose files name it so
DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
DEFAULT_REGION = "us-east-1"  # local mode needs a region, any will do


@dataclass(frozen=True)
class LocalModeRun:
    """Everything a local run needs."""

    training_image: str
    inference_image: str
    tracking_uri: str
    container_tracking_uri: str | None  # None: found at run time (see the module doc)
    experiment_name: str
    data_dir: Path
    output_dir: Path
    hyperparameters: dict[str, str]
    target: str
    features: list[str] | None
    region: str
    script: dict[str, str]  # source_dir / entry_point, or {} for the built-in model
    credentials: dict[str, str]  # MLflow's, for the training container


@dataclass
class Route:
    """How the local-mode containers reach the tracking server, and what to undo after."""

    uri: str
    connected_container: str | None = None
    created_network: bool = False


def quiet_hosting_thread_exit() -> None:
    """The SDK's serving thread raises when its endpoint is deleted (compose is killed):
    keep that expected exit from printing a traceback."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.thread).__name__ == "_HostingContainer" and args.exc_type is RuntimeError:
            return
        previous(args)

    threading.excepthook = hook


def require_image(tag: str) -> None:
    """The image must be built: local mode would otherwise try to pull it from a registry."""
    found = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise AwsScriptError(f"image {tag} is not built here: build it first (make build)")


def is_this_machine(host: str) -> bool:
    """Whether host names an address of this machine (only those can be bound)."""
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return False
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


def docker_json(*args: str) -> Any:
    """`docker ... --format json`-style output, parsed."""
    return json.loads(run(["docker", *args], f"docker {args[0]} {args[1]}", quiet=True))


def publishing_container(host_port: int) -> tuple[str, int] | None:
    """(container id, container port) of the running container publishing host_port."""
    ids = run(["docker", "ps", "-q"], "listing containers", quiet=True).split()
    for container in docker_json("container", "inspect", *ids) if ids else []:
        for port, bindings in (container["NetworkSettings"]["Ports"] or {}).items():
            if any(b.get("HostPort") == str(host_port) for b in bindings or []):
                return container["Id"], int(port.split("/")[0])
    return None


def ensure_network() -> bool:
    """Create `sagemaker-local` as the SDK's compose files declare it; True if created.

    The compose label lets the SDK's `docker compose up` adopt the network."""
    if network_exists():
        return False
    run(
        [
            "docker",
            "network",
            "create",
            "--label",
            f"com.docker.compose.network={NETWORK}",
            "--label",
            f"{LABEL}=network",
            NETWORK,
        ],
        f"creating the {NETWORK} network",
        quiet=True,
    )
    return True


def attach(container: str) -> tuple[str, bool]:
    """Connect the container to `sagemaker-local` (unless it is); return its address there
    and whether this call connected it."""
    networks = docker_json("container", "inspect", container)[0]["NetworkSettings"]["Networks"]
    connected = NETWORK not in networks
    if connected:
        run(["docker", "network", "connect", NETWORK, container], "connecting the tracking server")
        networks = docker_json("container", "inspect", container)[0]["NetworkSettings"]["Networks"]
    return networks[NETWORK]["IPAddress"], connected


def host_gateway_ip(image: str) -> str:
    """The Docker host's address as containers see it (Docker's host-gateway)."""
    out = run(
        [
            "docker",
            "run",
            "--rm",
            "--add-host",
            "mlstack-docker-host:host-gateway",
            "--entrypoint",
            "python",
            image,
            "-c",
            "import socket; print(socket.gethostbyname('mlstack-docker-host'))",
        ],
        "finding the Docker host's gateway address",
        quiet=True,
    )
    return out.strip().splitlines()[-1]


def with_host(uri: str, host: str, port: int | None) -> str:
    """The URI with another host (and port)."""
    parts = urlsplit(uri)
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def route_to_tracking_server(settings: LocalModeRun) -> Route:
    """Work out (and set up) how local-mode containers reach the tracking server."""
    created = ensure_network()
    if settings.container_tracking_uri:
        return Route(settings.container_tracking_uri, created_network=created)
    parts = urlsplit(settings.tracking_uri)
    if not parts.hostname or not is_this_machine(parts.hostname):
        return Route(settings.tracking_uri, created_network=created)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found = publishing_container(port)
    if found is None:  # a server outside Docker: through the host's gateway address
        gateway = host_gateway_ip(settings.training_image)
        return Route(with_host(settings.tracking_uri, gateway, port), created_network=created)
    container, container_port = found
    address, connected = attach(container)
    uri = with_host(settings.tracking_uri, address, container_port)
    return Route(uri, container if connected else None, created)


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


def load_settings(settings: AwsSettings) -> LocalModeRun:
    """Check the settings and what they name (images built, data written, server up)."""
    training = settings.training_image or f"mlstack/training:{version()}"
    inference = settings.inference_image or f"mlstack/inference:{version()}"
    for tag in (training, inference):
        require_image(tag)
    data_dir = settings.data_dir
    for channel in ("train", "test"):
        if not (data_dir / channel).is_dir():
            raise AwsScriptError(
                f"{data_dir / channel} does not exist: run `make data` "
                f"(mlstack data --dataset diabetes --output {data_dir}) or set DATA_DIR"
            )
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
        container_tracking_uri=settings.sagemaker_local_tracking_uri or None,
        experiment_name=settings.experiment_name,
        data_dir=data_dir.resolve(),
        output_dir=Path(settings.sagemaker_local_output).resolve(),
        hyperparameters={k: v for k, v in hyperparameters.items() if v},
        target=target,
        features=features,
        region=settings.aws_region or DEFAULT_REGION,
        script=script_mode(settings),
        credentials=settings.tracking_credentials(),
    )


def credential_free_session(region_name: str):
    """A boto3 session with no credentials at all: local mode needs none, and the SDK would
    copy any it finds into the containers' environment and its compose files."""
    import boto3
    import botocore.session
    from botocore.credentials import CredentialResolver

    core = botocore.session.Session()
    core.register_component("credential_provider", CredentialResolver(providers=[]))
    return boto3.Session(botocore_session=core, region_name=region_name)


def local_session(settings: LocalModeRun, run_id: str, work_dir: Path, port: int):
    """A LocalSession: file:// data, our own container root, a free serving port, labels."""
    from sagemaker.local import LocalSession

    session = LocalSession(
        boto_session=credential_free_session(settings.region), sagemaker_config=SDK_CONFIG
    )
    session.config = {
        "local": {
            "local_code": True,
            "serving_port": port,
            "container_root": str(work_dir),
            "container_config": {"labels": {LABEL: run_id}},
        }
    }
    return session


def network_exists() -> bool:
    found = subprocess.run(
        ["docker", "network", "inspect", NETWORK], capture_output=True, check=False
    )
    return found.returncode == 0


def cleanup(run_id: str, route: Route | None) -> None:
    """Remove the containers this run's SDK calls started (by label), disconnect the
    tracking server if this run connected it, and remove the network if this run made it."""
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL}={run_id}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if listed:
        subprocess.run(["docker", "rm", "-f", *listed], capture_output=True, check=False)
    if route and route.connected_container:
        subprocess.run(
            ["docker", "network", "disconnect", NETWORK, route.connected_container],
            capture_output=True,
            check=False,
        )
    if route and route.created_network:
        subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True, check=False)


def train(settings: LocalModeRun, session: Any, job_name: str, tracking_uri: str) -> str:
    """Run the training job; return the file:// URI of its model.tar.gz."""
    from sagemaker.estimator import Estimator

    # Local mode writes model.tar.gz straight into output_path and extracts it there to
    # serve it: one folder per job keeps jobs apart.
    output = settings.output_dir / job_name
    output.mkdir(parents=True, exist_ok=True)
    estimator = Estimator(
        image_uri=settings.training_image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        output_path=output.as_uri(),
        hyperparameters={"tracking_uri": tracking_uri, **settings.hyperparameters},
        # The stack's credentials (make exports them) as environment, not hyperparameters,
        # which SageMaker records in the job's description.
        environment=settings.credentials,
        sagemaker_session=session,
        **settings.script,
    )
    channels = {name: (settings.data_dir / name).as_uri() for name in ("train", "test")}
    estimator.fit(channels, job_name=job_name)
    return estimator.model_data


def serve_and_predict(
    settings: LocalModeRun, session: Any, model_data: str, endpoint: str
) -> tuple[str, Any]:
    """Deploy model.tar.gz with the inference image; send the reference's request."""
    from sagemaker.model import Model

    model = Model(
        image_uri=settings.inference_image,
        model_data=model_data,
        role=ROLE,
        sagemaker_session=session,
        name=endpoint,
    )
    model.deploy(initial_instance_count=1, instance_type="local", endpoint_name=endpoint)
    try:
        payload = reference_payload(
            settings.data_dir / "test" / "test.csv", settings.target, settings.features
        )
        response = session.sagemaker_runtime_client.invoke_endpoint(
            EndpointName=endpoint,
            ContentType=CONTENT_TYPE,
            Accept=CONTENT_TYPE,
            Body=payload,
        )
        body = response["Body"].read().decode()
    finally:
        session.delete_endpoint(endpoint)  # stops the serving container
        with contextlib.suppress(Exception):
            session.delete_endpoint_config(endpoint)
            model.delete_model()
    return payload, json.loads(body)


@main_wrapper
def main(aws_settings: AwsSettings) -> int:
    """Train, deploy and predict in SageMaker local mode; print a JSON summary."""
    settings = load_settings(aws_settings)
    sagemaker_sdk_logging()
    quiet_hosting_thread_exit()
    run_id = uuid.uuid4().hex[:12]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    job_name = f"mlstack-local-{stamp}-{run_id[:6]}"
    work_dir = settings.output_dir / "work" / run_id
    work_dir.mkdir(parents=True, exist_ok=True)
    route = None
    try:
        route = route_to_tracking_server(settings)
        print(f"tracking at {settings.tracking_uri} (containers: {route.uri})", file=sys.stderr)
        # The SDK streams container logs to stdout; this script keeps stdout for its result.
        with contextlib.redirect_stdout(sys.stderr):
            session = local_session(settings, run_id, work_dir, free_port())
            model_data = train(settings, session, job_name, route.uri)
            payload, prediction = serve_and_predict(settings, session, model_data, job_name)
    except RuntimeError as error:  # how the SDK reports a failed job or endpoint
        lines = str(error).strip().splitlines()
        raise AwsScriptError(
            f"local mode failed: {lines[-1] if lines else error}; the containers' logs are above"
        ) from None
    finally:
        cleanup(run_id, route)
        shutil.rmtree(work_dir, ignore_errors=True)
    summary = {
        "training_job_name": job_name,
        "model_data": model_data,
        "tracking_uri": settings.tracking_uri,
        "experiment_name": settings.experiment_name,
        "payload": json.loads(payload),
        "prediction": prediction,
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
