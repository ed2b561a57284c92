"""SageMaker local mode's Docker side: how its containers reach the tracking server, and
removing what a run left behind (through the Docker SDK; the SDKs run compose themselves).

Both SDK generations (v2's LocalSession, v3's ModelTrainer and LocalSession) run their
containers with `docker compose` on the Docker network `sagemaker-local`, where 127.0.0.1 is
the container itself. So when the tracking URI points at this machine, the container that
publishes that port (the local stack's tracking server) is connected to `sagemaker-local` for
the run (and disconnected after) and reached at its address there, a private address that
MLflow's Host-header check allows; a server outside Docker is reached at the Docker host's
gateway address.

Compose labels every container with its project's directory
(`com.docker.compose.project.working_dir`), and both SDKs write their compose files under
the container root they are given: the containers a run started are those whose directory
lies in that root, training and serving alike (v3 leaves its job containers stopped).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlstack.cli import docker_engine
from mlstack.cli.aws.common import AwsScriptError

NETWORK = "sagemaker-local"  # the SDKs' compose files name it so
LABEL = "org.mlstack.sagemaker-local.run"  # on the network when a run creates it
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
GATEWAY_HOST = "mlstack-docker-host"


@dataclass
class Route:
    """How the local-mode containers reach the tracking server, and what to undo after."""

    uri: str
    connected_container: str | None = None
    created_network: bool = False


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


def publishing_container(host_port: int) -> tuple[str, int] | None:
    """(container id, container port) of the running container publishing host_port."""
    for container in docker_engine.client().containers.list():
        for port, bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).items():
            if any(b.get("HostPort") == str(host_port) for b in bindings or []):
                return container.id, int(port.split("/")[0])
    return None


def ensure_network() -> bool:
    """Create `sagemaker-local` as the SDKs' compose files declare it; True if created.

    The compose label lets the SDKs' `docker compose up` adopt the network."""
    networks = docker_engine.client().networks
    if any(network.name == NETWORK for network in networks.list(names=[NETWORK])):
        return False
    networks.create(NETWORK, labels={"com.docker.compose.network": NETWORK, LABEL: "network"})
    return True


def attach(container_id: str) -> tuple[str, bool]:
    """Connect the container to `sagemaker-local` (unless it is); return its address there
    and whether this call connected it."""
    from docker.errors import APIError

    container = docker_engine.client().containers.get(container_id)
    connected = NETWORK not in container.attrs["NetworkSettings"]["Networks"]
    if connected:
        try:
            docker_engine.client().networks.get(NETWORK).connect(container)
        except APIError as error:
            raise AwsScriptError(
                f"connecting the tracking server to {NETWORK} failed: {error.explanation}"
            ) from None
        container.reload()
    return container.attrs["NetworkSettings"]["Networks"][NETWORK]["IPAddress"], connected


def host_gateway_ip(image: str) -> str:
    """The Docker host's address as containers see it (Docker's host-gateway)."""
    output = docker_engine.client().containers.run(
        image,
        ["-c", f"import socket; print(socket.gethostbyname('{GATEWAY_HOST}'))"],
        entrypoint="python",
        extra_hosts={GATEWAY_HOST: "host-gateway"},
        remove=True,
    )
    return output.decode().strip().splitlines()[-1]


def with_host(uri: str, host: str, port: int | None) -> str:
    """The URI with another host (and port)."""
    parts = urlsplit(uri)
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def route_to_tracking_server(tracking_uri: str, image: str, override: str = "") -> Route:
    """Work out (and set up) how local-mode containers reach the tracking server at
    tracking_uri (as this machine reaches it); override, when given, is used as it is.
    image: any local image with Python, to find the Docker host's gateway address."""
    created = ensure_network()
    if override:
        return Route(override, created_network=created)
    parts = urlsplit(tracking_uri)
    if not parts.hostname or not is_this_machine(parts.hostname):
        return Route(tracking_uri, created_network=created)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    found = publishing_container(port)
    if found is None:  # a server outside Docker: through the host's gateway address
        gateway = host_gateway_ip(image)
        return Route(with_host(tracking_uri, gateway, port), created_network=created)
    container, container_port = found
    address, connected = attach(container)
    uri = with_host(tracking_uri, address, container_port)
    return Route(uri, container if connected else None, created)


def containers_under(root: Path) -> list:
    """The containers (running or not) whose compose project lies in root."""
    listed = docker_engine.client().containers.list(all=True, filters={"label": WORKING_DIR_LABEL})
    return [
        container
        for container in listed
        if Path(container.labels.get(WORKING_DIR_LABEL, "/")).is_relative_to(root)
    ]


def remove_containers_under(root: Path) -> None:
    """Remove every container whose compose project lies in root."""
    from docker.errors import APIError

    for container in containers_under(root):
        with contextlib.suppress(APIError):
            container.remove(force=True)


def release(route: Route | None) -> None:
    """Disconnect the tracking server if the route connected it; remove the network if the
    route created it."""
    from docker.errors import APIError

    if route is None or not (route.connected_container or route.created_network):
        return
    with contextlib.suppress(APIError):
        network = docker_engine.client().networks.get(NETWORK)
        if route.connected_container:
            with contextlib.suppress(APIError):
                network.disconnect(route.connected_container)
        if route.created_network:
            network.remove()


def remove_tree(path: Path, image: str) -> None:
    """Remove a container root: the containers ran as root and wrote root-owned files into
    it, which a user without root can only remove after a container opens them up."""
    from docker.errors import DockerException

    if not path.exists():
        return
    try:
        shutil.rmtree(path)
        return
    except PermissionError:
        pass
    with contextlib.suppress(DockerException):
        docker_engine.client().containers.run(
            image,
            ["-R", "a+rwX", "/opened"],
            entrypoint="chmod",
            volumes={str(path): {"bind": "/opened", "mode": "rw"}},
            remove=True,
        )
    shutil.rmtree(path, ignore_errors=True)
