"""SageMaker local mode's Docker side: how its containers reach the tracking server, and
removing what a run left behind.

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

import json
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mlstack.cli.aws.common import AwsScriptError, run

NETWORK = "sagemaker-local"  # the SDKs' compose files name it so
LABEL = "org.mlstack.sagemaker-local.run"  # on the network when a run creates it
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
COMPOSE_FILE = "docker-compose.yaml"  # what SDK v3 writes into a job's local_container_root


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


def network_exists() -> bool:
    found = subprocess.run(
        ["docker", "network", "inspect", NETWORK], capture_output=True, check=False
    )
    return found.returncode == 0


def ensure_network() -> bool:
    """Create `sagemaker-local` as the SDKs' compose files declare it; True if created.

    The compose label lets the SDKs' `docker compose up` adopt the network."""
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


def containers_under(root: Path) -> list[str]:
    """Ids of the containers (running or not) whose compose project lies in root."""
    listed = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={WORKING_DIR_LABEL}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not listed:
        return []
    found = subprocess.run(
        ["docker", "container", "inspect", *listed], capture_output=True, text=True, check=False
    )
    inside = []
    for container in json.loads(found.stdout or "[]"):
        directory = Path((container["Config"]["Labels"] or {}).get(WORKING_DIR_LABEL, "/"))
        if directory.is_relative_to(root):
            inside.append(container["Id"])
    return inside


def remove_containers_under(root: Path) -> None:
    """Remove every container whose compose project lies in root."""
    found = containers_under(root)
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True, check=False)


def release(route: Route | None) -> None:
    """Disconnect the tracking server if the route connected it; remove the network if the
    route created it."""
    if route and route.connected_container:
        subprocess.run(
            ["docker", "network", "disconnect", NETWORK, route.connected_container],
            capture_output=True,
            check=False,
        )
    if route and route.created_network:
        subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True, check=False)


def remove_tree(path: Path, image: str) -> None:
    """Remove a container root: the containers ran as root and wrote root-owned files into
    it, which a user without root can only remove after a container opens them up."""
    if not path.exists():
        return
    try:
        shutil.rmtree(path)
        return
    except PermissionError:
        pass
    opened = ["docker", "run", "--rm", "--entrypoint", "chmod", "-v", f"{path}:/opened", image]
    subprocess.run(
        [*opened, "-R", "a+rwX", "/opened"],
        capture_output=True,
        check=False,
    )
    shutil.rmtree(path, ignore_errors=True)


def job_name_in(container_root: Path) -> str:
    """The name of the SDK v3 local job run with container_root as its local_container_root,
    as v3 gave it to the container (TRAINING_JOB_NAME in the compose file it wrote there):
    ModelTrainer makes the name from base_job_name and the time, and in local mode does not
    return it."""
    import yaml

    compose = yaml.safe_load((container_root / COMPOSE_FILE).read_text())
    for service in compose["services"].values():
        for variable in service.get("environment") or []:
            name, _, value = variable.partition("=")
            if name == "TRAINING_JOB_NAME":
                return value
    raise AwsScriptError(f"no TRAINING_JOB_NAME in {container_root / COMPOSE_FILE}")
