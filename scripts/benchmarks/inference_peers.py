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

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
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
class Launch:
    """How to start one server, in a container or as a process of this machine.

    In args, command and the environments, {port} is where it listens, {models} the models'
    folder, {bench} this folder, {repository} MLServer's repository, {model} the one MLflow
    model it serves: container paths in Docker, this machine's paths on the host.
    """

    label: str
    image: str
    args: list[str]
    container_port: int
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    host_env: dict[str, str] = field(default_factory=dict)
    entrypoint: str | None = None


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
class Process:
    """A server this benchmark started as a process group of this machine."""

    name: str
    port: int
    popen: subprocess.Popen
    log: Path

    def running(self) -> bool:
        return self.popen.poll() is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def _tree(self) -> list[int]:
        pids, index = [self.popen.pid], 0
        while index < len(pids):
            for children in Path(f"/proc/{pids[index]}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    pids += [int(pid) for pid in children.read_text().split()]
            index += 1
        return pids

    def cpu_seconds(self) -> float | None:
        """CPU time used so far by the process and its live descendants."""
        ticks = 0
        for pid in self._tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def peak_memory_mb(self) -> float | None:
        """The sum of each live process's peak resident memory (VmHWM)."""
        total = 0
        for pid in self._tree():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        return total / 1024

    def remove(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)  # the session this benchmark started
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=20)


Server = Container | Process


@dataclass
class Placement:
    """Where the servers run: `docker-host` (containers sharing the host's loopback, no proxy
    in the way), `docker-bridge` (published ports through Docker's proxy) or `processes`
    (this machine's venvs: the host venv, and `mlserver_venv` for MLServer)."""

    kind: str
    work: Path
    mlserver_venv: Path | None = None
    started: list[Server] = field(default_factory=list)

    @property
    def in_docker(self) -> bool:
        return self.kind.startswith("docker")

    def paths(self, model: Path | None) -> dict[str, str]:
        """What the placeholders stand for here."""
        if self.in_docker:
            return {"models": "/models", "bench": "/bench", "repository": "/repository"} | {
                "model": "/opt/ml/model"
            }
        return {
            "models": str(self.work / "models"),
            "bench": str(Path(__file__).parent),
            "repository": str(self.work / "mlserver"),
            "model": str(model or ""),
        }

    def start(self, launch: Launch, model: Path | None = None) -> Server:
        from mlstack.core.ports import free_port

        port = free_port()
        inner = port if self.kind != "docker-bridge" else launch.container_port
        values = self.paths(model) | {"port": str(inner)}

        def fill(text: str) -> str:
            return text.format(**values)

        server = (
            self._container(launch, port, fill, model)
            if self.in_docker
            else self._process(launch, port, fill)
        )
        self.started.append(server)
        return server

    def _container(self, launch: Launch, port: int, fill, model: Path | None) -> Container:
        name = f"{CONTAINER_LABEL}-{launch.label}-{uuid.uuid4().hex[:6]}"
        command = ["docker", "run", "-d", "--name", name, "--label", CONTAINER_LABEL]
        mounts = {
            str(self.work / "models"): "/models",
            str(Path(__file__).parent): "/bench",
            str(self.work / "mlserver"): "/repository",
        }
        if model is not None:
            mounts[str(model)] = "/opt/ml/model"
        for source, target in mounts.items():
            if Path(source).exists():
                command += ["-v", f"{source}:{target}:ro"]
        if self.kind == "docker-host":
            command += ["--network", "host"]
        else:
            command += ["-p", f"127.0.0.1:{port}:{launch.container_port}"]
        for key, value in launch.env.items():
            command += ["-e", f"{key}={fill(value)}"]
        if launch.entrypoint:
            command += ["--entrypoint", launch.entrypoint]
        command += [launch.image, *map(fill, launch.args)]
        started = subprocess.run(command, capture_output=True, text=True)
        if started.returncode != 0:
            raise BenchError(f"docker run {launch.image} failed: {started.stderr.strip()}")
        return Container(name, port, started.stdout.strip())

    def _process(self, launch: Launch, port: int, fill) -> Process:
        bin_dir = Path(sys.executable).parent
        if launch.label == "mlserver":
            if self.mlserver_venv is None:
                raise BenchError("MLServer on the host needs --mlserver-venv (a venv with it)")
            bin_dir = self.mlserver_venv / "bin"
        command = [fill(part) for part in launch.command]
        command[0] = str(bin_dir / command[0])
        if not Path(command[0]).exists():
            raise BenchError(f"{command[0]} not found: run with the venv that has it")
        extra = {key: fill(value) for key, value in (launch.env | launch.host_env).items()}
        env = {**os.environ, **extra, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        log = self.work / f"{launch.label}-{uuid.uuid4().hex[:6]}.log"
        with open(log, "w") as handle:
            popen = subprocess.Popen(
                command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Process(launch.label, port, popen, log)

    def stop(self, server: Server) -> None:
        server.remove()
        if server in self.started:
            self.started.remove(server)

    def remove_all(self) -> None:
        for server in self.started:
            server.remove()
        self.started.clear()


def mlserver_repository(
    root: Path,
    models: dict[str, tuple[Path, Path]],
    workers: int,
    host_ports: list[int] | None,
    models_root: str,
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
            ("sk", "mlserver_sklearn.SKLearnModel", f"{models_root}/{name}/{joblib_file.name}"),
            ("mlflow", "mlserver_mlflow.MLflowRuntime", f"{models_root}/{name}/{mlflow_dir.name}"),
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
