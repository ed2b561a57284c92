"""The servers the inference benchmark compares, each in a container of its own.

- mlstack: the inference image as SageMaker starts it (`serve`), with the fast path on, and
  again with INFERENCE_FAST_PATH=false (the generic path);
- stock: `mlflow models serve -w N --env-manager local`, MLflow as pip installs it;
- MLServer 1.7.1 with its scikit-learn and MLflow runtimes, adaptive batching off and on
  (8 rows, 2 ms: the settings the issue measured), N parallel workers, debug (access logs)
  off; one container serves every model of the run;
- ceiling: uvicorn with httptools and uvloop in the inference image, N workers, serving
  ceiling_app.py (reads the body, answers a constant).

The peers' images are built FROM the same Python base image as ours (the stand-in of
`make offline-images`, from .images.env) with pip, at the versions our images pin, and kept
under tags that name their contents. Every container is removed by whoever started it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLSERVER_VERSION = "1.7.1"
# MLServer's workers crash with uvloop >= 0.22 ("no current event loop").
MLSERVER_UVLOOP = "uvloop<0.22"
MLSERVER_BATCH = {"max_batch_size": 8, "max_batch_time": 0.002}
CONTAINER_LABEL = "mlstack-inference-bench"


class BenchError(Exception):
    """Something the benchmark needs is missing or failed; the message says what."""


def base_image() -> str:
    """The Python base image our images build from: the stand-in .images.env names, else
    the public one (the Makefile's default)."""
    env_file = ROOT / ".images.env"
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "PYTHON_BASE_IMAGE" and value.strip():
            return value.strip()
    return "python:3.11-slim"


def image_pins() -> dict[str, str]:
    """The versions the inference image pins (its requirements.txt), by distribution."""
    pins = {}
    for line in (ROOT / "images" / "inference" / "requirements.txt").read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        if version:
            pins[name.lower()] = version
    return pins


def stock_requirements() -> list[str]:
    """MLflow as users pip install it, with the model's libraries at the image's versions."""
    pins = image_pins()
    libraries = ("scikit-learn", "numpy", "pandas", "scipy", "skops")
    return [f"mlflow=={pins['mlflow-skinny']}", *(f"{name}=={pins[name]}" for name in libraries)]


def mlserver_requirements() -> list[str]:
    pins = image_pins()
    return [
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-sklearn=={MLSERVER_VERSION}",
        f"mlserver-mlflow=={MLSERVER_VERSION}",
        MLSERVER_UVLOOP,
        f"mlflow=={pins['mlflow-skinny']}",
        *(f"{name}=={pins[name]}" for name in ("scikit-learn", "skops")),
    ]


def ensure_image(name: str, requirements: list[str]) -> str:
    """FROM the base image, a venv with `requirements` (pip); built once per content."""
    base = base_image()
    dockerfile = (
        "ARG PYTHON_BASE_IMAGE\n"
        "FROM ${PYTHON_BASE_IMAGE}\n"
        "RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir "
        "--disable-pip-version-check --quiet " + " ".join(f"'{r}'" for r in requirements) + "\n"
        "ENV PATH=/opt/venv/bin:$PATH MLFLOW_DISABLE_TELEMETRY=true PYTHONUNBUFFERED=1\n"
        "RUN useradd --uid 10001 --create-home bench\n"
        "USER bench\n"
    )
    digest = hashlib.sha256((base + dockerfile).encode()).hexdigest()[:12]
    tag = f"mlstack-bench/{name}:{digest}"
    present = subprocess.run(["docker", "image", "inspect", tag], capture_output=True)
    if present.returncode == 0:
        return tag
    print(f"building {tag} ({' '.join(requirements)})", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-image-") as context:
        (Path(context) / "Dockerfile").write_text(dockerfile)
        command = ["docker", "build", "--quiet", "--build-arg", f"PYTHON_BASE_IMAGE={base}"]
        built = subprocess.run(
            [*command, "-t", tag, context],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if built.returncode != 0:
        raise BenchError(f"building {tag} failed:\n{built.stderr[-3000:]}")
    return tag


@dataclass
class Container:
    """A detached container this benchmark started; `port` is where 127.0.0.1 reaches it."""

    name: str
    port: int
    full_id: str = ""

    def running(self) -> bool:
        state = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Running}}", self.name],
            capture_output=True,
            text=True,
        )
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        out = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True)
        return out.stdout + out.stderr

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process of the container so far (cgroup v1 or v2)."""
        for path in (
            Path(f"/sys/fs/cgroup/cpuacct/docker/{self.full_id}/cpuacct.usage"),
            Path(f"/sys/fs/cgroup/system.slice/docker-{self.full_id}.scope/cpu.stat"),
            Path(f"/sys/fs/cgroup/docker/{self.full_id}/cpu.stat"),
        ):
            try:
                text = path.read_text()
            except OSError:
                continue
            if path.name == "cpuacct.usage":
                return int(text) / 1e9
            for line in text.splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) / 1e6
        return None

    def peak_memory_mb(self) -> float | None:
        """The container's peak memory (cgroup v1's max_usage; v2's memory.peak)."""
        for path in (
            Path(f"/sys/fs/cgroup/memory/docker/{self.full_id}/memory.max_usage_in_bytes"),
            Path(f"/sys/fs/cgroup/system.slice/docker-{self.full_id}.scope/memory.peak"),
        ):
            try:
                return int(path.read_text()) / 2**20
            except OSError:
                continue
        return None

    def remove(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True)


@dataclass
class Placement:
    """How containers are reached: `host` shares the host's loopback (no proxy in the way),
    `bridge` publishes a port through Docker's proxy."""

    network: str
    started: list[Container] = field(default_factory=list)

    def run(
        self,
        label: str,
        image: str,
        args: list[str],
        container_port: int,
        env: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        entrypoint: str | None = None,
        extra_ports: int = 0,
    ) -> tuple[Container, list[int]]:
        """Start a container; in `host` placement, `container_port` is replaced in env and
        args by a free host port (and so are `extra_ports` more, returned)."""
        from mlstack.core.ports import free_port

        name = f"{CONTAINER_LABEL}-{label}-{uuid.uuid4().hex[:6]}"
        command = ["docker", "run", "-d", "--name", name, "--label", CONTAINER_LABEL]
        for source, target in (volumes or {}).items():
            command += ["-v", f"{source}:{target}:ro"]
        extras = [free_port() for _ in range(extra_ports)]
        if self.network == "host":
            port = free_port()
            command += ["--network", "host"]
        else:
            port = free_port()
            command += ["-p", f"127.0.0.1:{port}:{container_port}"]
        inner = port if self.network == "host" else container_port
        env = {k: v.replace("{port}", str(inner)) for k, v in (env or {}).items()}
        for key, value in env.items():
            command += ["-e", f"{key}={value}"]
        if entrypoint:
            command += ["--entrypoint", entrypoint]
        command += [image, *(arg.replace("{port}", str(inner)) for arg in args)]
        started = subprocess.run(command, capture_output=True, text=True)
        if started.returncode != 0:
            raise BenchError(f"docker run {image} failed: {started.stderr.strip()}")
        container = Container(name, port, started.stdout.strip())
        self.started.append(container)
        return container, extras

    def remove_all(self) -> None:
        for container in self.started:
            container.remove()
        self.started.clear()


def mlserver_repository(
    root: Path, models: dict[str, tuple[Path, Path]], workers: int, host_ports: list[int] | None
) -> Path:
    """An MLServer model repository: for each model (joblib file, MLflow folder), the
    scikit-learn and MLflow runtimes, batching off and on; settings.json with the workers,
    debug off and, in host placement, free ports for HTTP, gRPC and metrics."""
    repository = root / "mlserver"
    repository.mkdir()
    settings = {"debug": False, "parallel_workers": workers, "host": "0.0.0.0"}
    if host_ports:
        settings.update(
            http_port=host_ports[0], grpc_port=host_ports[1], metrics_port=host_ports[2]
        )
    (repository / "settings.json").write_text(json.dumps(settings))
    for name, (joblib_file, mlflow_dir) in models.items():
        for runtime, implementation, uri in (
            ("sk", "mlserver_sklearn.SKLearnModel", f"/models/{name}/{joblib_file.name}"),
            ("mlflow", "mlserver_mlflow.MLflowRuntime", f"/models/{name}/{mlflow_dir.name}"),
        ):
            for batching in (False, True):
                model_name = f"{name}-{runtime}{'-batch' if batching else ''}"
                folder = repository / model_name
                folder.mkdir()
                model_settings = {
                    "name": model_name,
                    "implementation": implementation,
                    "parameters": {"uri": uri},
                    **(MLSERVER_BATCH if batching else {}),
                }
                (folder / "model-settings.json").write_text(json.dumps(model_settings))
    for item in [repository, *repository.rglob("*")]:
        item.chmod(0o755 if item.is_dir() else 0o644)
    return repository
