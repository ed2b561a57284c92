"""AWS stand-ins for the tests: moto in server mode, and a real registry (Debian's
docker-registry) on 127.0.0.1, each on a free port and stopped by its fixture."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import requests

from mlstack.cli.settings import ALL_SETTINGS
from mlstack.core.settings import variables
from support.ports import free_port
from support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
REGISTRY_BINARY = "docker-registry"
# What `mlstack aws` reads besides AWS_* and MLFLOW_*: never inherited from the caller's shell.
SCRIPT_SETTINGS = {"PYTHONPATH"} | set().union(*(variables(cls) for cls in ALL_SETTINGS))


@dataclass
class Moto:
    """A moto server: its endpoint, and boto3 clients that talk to it."""

    endpoint: str

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def reset(self) -> None:
        """Forget every resource (moto's own reset API)."""
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a script run against this server."""
        return clean_env(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION=REGION,
            **extra,
        )


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without AWS, MLflow or mlstack's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "MLFLOW_")) and key not in SCRIPT_SETTINGS
    }
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
    )
    env.update(extra)
    return env


@pytest.fixture
def script_env():
    """clean_env, for tests (test modules here cannot import this conftest)."""
    return clean_env


def resolve_parameter_group_refs_to_names() -> None:
    """Make moto's CloudFormation resolve `Ref` to an RDS DB parameter group to its name.

    CloudFormation's documented return value of Ref for AWS::RDS::DBParameterGroup is the
    group's name; moto 5.2.5's DBParameterGroup has no physical_resource_id, so its Ref
    yields the Python object and the DB instance that names the group fails to create.
    """
    from moto.rds.models import DBParameterGroup

    if not hasattr(DBParameterGroup, "physical_resource_id"):
        DBParameterGroup.physical_resource_id = property(lambda group: group.name)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[Moto]:
    """moto in server mode on 127.0.0.1, so scripts in subprocesses can use AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    resolve_parameter_group_refs_to_names()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Moto(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: Moto) -> Moto:
    """The moto server, emptied before the test."""
    moto_server.reset()
    return moto_server


def run_script(
    command: str, env: dict[str, str], *args: str, timeout: float = 600, cwd: Path = ROOT
):
    """`mlstack aws COMMAND ARGS` in a subprocess (no .env: the test's env only), run in cwd,
    output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mlstack", "--env-file", os.devnull, "aws", command, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def run_aws():
    """run_script, for tests (test modules here cannot import this conftest)."""
    return run_script


@dataclass
class Registry:
    """A registry on 127.0.0.1 that accepts the ECR token moto hands out."""

    host: str
    user: str
    password: str

    def get(self, path: str, **headers: str) -> requests.Response:
        return requests.get(
            f"http://{self.host}/v2/{path}",
            auth=(self.user, self.password),
            headers=headers,
            timeout=10,
        )


def ecr_credentials(moto: Moto) -> tuple[str, str]:
    """The user and password inside moto's ECR authorization token."""
    data = moto.client("ecr").get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return user, password


@pytest.fixture
def docker_registry(tmp_path: Path, moto: Moto) -> Iterator[Registry]:
    """Debian's docker-registry with htpasswd auth for moto's ECR token, storage in tmp_path."""
    binary = shutil.which(REGISTRY_BINARY) or (
        "/usr/bin/docker-registry" if Path("/usr/bin/docker-registry").exists() else None
    )
    if binary is None:
        pytest.fail("docker-registry is not installed: apt-get install -y docker-registry")
    import bcrypt

    user, password = ecr_credentials(moto)
    root = tmp_path / "registry"
    (root / "data").mkdir(parents=True)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    (root / "htpasswd").write_text(f"{user}:{hashed}\n")
    port = free_port()
    (root / "config.yml").write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: mlstack-test\n    path: {root / 'htpasswd'}\n"
    )
    log = (root / "registry.log").open("w")
    process = subprocess.Popen(
        [binary, "serve", str(root / "config.yml")], stdout=log, stderr=subprocess.STDOUT
    )
    registry = Registry(host=f"127.0.0.1:{port}", user=user, password=password)
    try:
        wait_until(  # 401: up, and asking for the login
            lambda: requests.get(f"http://{registry.host}/v2/", timeout=2).status_code == 401,
            timeout=20,
            every=0.2,
            ignoring=(requests.ConnectionError,),
            give_up=lambda: process.poll() is not None,
            message=lambda: f"docker-registry did not start: {(root / 'registry.log').read_text()}",
        )
        yield registry
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
