"""The tracking server when its database or object store stops answering: bounded errors,
recovery without a restart, readiness that says so. A stack of its own, so the pauses
never touch the session's."""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from testcontainers.core.network import Network

from support.faults import (
    ERROR_BOUND_S,
    FaultStack,
    MemorySampler,
    kill_main_process,
    paused,
    run_fault_server,
)
from support.stack import run_minio, run_mysql
from support.waiting import seconds_until

pytestmark = pytest.mark.docker
CLIENT_TIMEOUT_S = ERROR_BOUND_S + 30  # the client waits past the bound, to see a hang
# /ready with the database paused: 2 s for each of connect, greeting and query
# (mlstack.tracking.readiness), with room for the server's own work.
READY_BOUND_S = 10
API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def stack(tracking_server_image: str) -> Iterator[FaultStack]:
    with (
        Network() as network,
        run_mysql(network) as mysql,
        run_minio(network) as minio,
        run_fault_server(tracking_server_image, network, mysql, minio) as (server, port),
    ):
        running = FaultStack(network, mysql, minio, server, port)
        running.wait_until_ready()
        yield running


def call(method: str, url: str, **kwargs) -> tuple[float, int | str]:
    """(seconds, HTTP status or the client's exception name) of one request, never retried."""
    started = time.monotonic()
    try:
        status: int | str = requests.request(method, url, timeout=CLIENT_TIMEOUT_S, **kwargs)
        status = status.status_code
    except requests.RequestException as error:
        status = type(error).__name__
    return time.monotonic() - started, status


def new_run(stack: FaultStack) -> tuple[str, str]:
    """(experiment id, run id) of a fresh run, made while everything answers."""
    name = f"faults-{time.monotonic_ns()}"
    created = requests.post(f"{stack.uri}{API}/experiments/create", json={"name": name}, timeout=30)
    experiment_id = created.json()["experiment_id"]
    run = requests.post(
        f"{stack.uri}{API}/runs/create", json={"experiment_id": experiment_id}, timeout=30
    )
    return experiment_id, run.json()["run"]["info"]["run_id"]


def machine_allowance(stack: FaultStack) -> float:
    """Seconds the server takes now to answer /ready with everything up (the worst of three):
    what a busy machine adds to every answer, allowed on top of a bound."""
    return max(call("GET", f"{stack.uri}/ready")[0] for _ in range(3))


def assert_within(answers: list[tuple[float, int | str]], bound: float, allowance: float) -> None:
    """Every answer an error (5xx), each within the documented bound plus the allowance;
    the distribution printed beside it."""
    seconds = sorted(round(s, 1) for s, _ in answers)
    print(f"errors after {seconds} s (bound {bound} s + {allowance:.2f} s for the machine)")
    for spent, status in answers:
        assert isinstance(status, int) and status >= 500, answers
        assert spent <= bound + allowance, answers


def recovers(check, timeout: float = 30) -> float:
    """Seconds until check() is true; fails after timeout."""
    return seconds_until(check, timeout=timeout, message="did not recover")


def test_ready_follows_the_database_and_health_stays_cheap(stack: FaultStack) -> None:
    assert requests.get(f"{stack.uri}/ready", timeout=10).json() == {"ready": True}
    allowance = machine_allowance(stack)
    with paused(stack.mysql.container):
        # A load balancer's probe gets its answer within READY_BOUND_S, not a hang.
        assert_within([call("GET", f"{stack.uri}/ready")], READY_BOUND_S, allowance)
        assert requests.get(f"{stack.uri}/health", timeout=5).status_code == 200
    recovers(lambda: requests.get(f"{stack.uri}/ready", timeout=10).status_code == 200)


def test_paused_database_gives_errors_within_the_bound_then_recovers(stack: FaultStack) -> None:
    experiment_id, run_id = new_run(stack)
    # Every worker fresh, as after a deploy or a crash, and none has served a request yet:
    # MLflow opened a worker's stores on its first request, retrying for minutes while the
    # database was paused, so whichever call reached a fresh worker waited past the bound.
    stack.server.restart(timeout=40)
    stack.wait_until_ready()
    before = stack.server_state()
    requests_to_make = [
        ("GET", f"{stack.uri}{API}/runs/get?run_id={run_id}", {}),
        ("POST", f"{stack.uri}{API}/runs/create", {"json": {"experiment_id": experiment_id}}),
        (
            "POST",
            f"{stack.uri}{API}/runs/log-parameter",
            {"json": {"run_id": run_id, "key": "k", "value": "v"}},
        ),
        ("POST", f"{stack.uri}{API}/experiments/search", {"json": {"max_results": 5}}),
    ]
    allowance = machine_allowance(stack)
    with paused(stack.mysql.container), ThreadPoolExecutor(len(requests_to_make)) as pool:
        answers = list(pool.map(lambda r: call(r[0], r[1], **r[2]), requests_to_make))
    assert_within(answers, ERROR_BOUND_S, allowance)

    def logs_again() -> bool:
        body = {"run_id": run_id, "key": "after", "value": "pause"}
        return call("POST", f"{stack.uri}{API}/runs/log-parameter", json=body)[1] == 200

    recovers(logs_again)
    run = requests.get(f"{stack.uri}{API}/runs/get?run_id={run_id}", timeout=30).json()
    assert {p["key"] for p in run["run"]["data"]["params"]} >= {"after"}
    assert stack.server_state() == before  # no restart of the server was needed


def test_paused_object_store_gives_errors_within_the_bound_then_recovers(
    stack: FaultStack,
) -> None:
    experiment_id, run_id = new_run(stack)
    base = f"{stack.uri}/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"
    assert call("PUT", f"{base}/before.txt", data=b"before")[1] == 200
    before = stack.server_state()
    allowance = machine_allowance(stack)
    transfers = [
        ("PUT", f"{base}/during.txt", {"data": b"during"}),
        ("GET", f"{base}/before.txt", {}),
        ("GET", f"{stack.uri}/api/2.0/mlflow-artifacts/artifacts?path={experiment_id}", {}),
    ]
    with paused(stack.minio.container), ThreadPoolExecutor(len(transfers)) as pool:
        answers = list(pool.map(lambda r: call(r[0], r[1], **r[2]), transfers))
    assert_within(answers, ERROR_BOUND_S, allowance)

    recovers(lambda: call("PUT", f"{base}/after.txt", data=b"after")[1] == 200)
    assert requests.get(f"{base}/after.txt", timeout=30).content == b"after"
    assert requests.get(f"{base}/before.txt", timeout=30).content == b"before"
    assert stack.server_state() == before


# --- the acknowledged-write ledger under faults -----------------------------------------------

CLIENTS = 16
LOAD_S = 60
STEPS = 5
# Seconds into the load at which each fault starts.
FAULTS = {"restart MySQL": 8, "kill the server's main process": 24, "restart MinIO": 42}


@pytest.mark.fault
def test_no_acknowledged_write_is_lost_under_faults(
    stack: FaultStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The client retries a little, as users' do, but never for longer than the load lasts.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", str(ERROR_BOUND_S + 10))
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    experiment_id = MlflowClient(stack.uri).create_experiment(f"ledger-{time.monotonic_ns()}")
    ledger = Ledger()
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS + 1) as pool:
        faults = pool.submit(inject_faults, stack, started)
        clients = [
            pool.submit(client_loop, stack.uri, experiment_id, index, started + LOAD_S, ledger)
            for index in range(CLIENTS)
        ]
        for future in [*clients, faults]:
            future.result()
    stack.wait_until_ready()
    fault_log = faults.result()

    stored = read_back(stack, experiment_id)
    lost = ledger.missing_from(stored)
    figures = ledger.figures(LOAD_S) | {"faults": fault_log, "lost": len(lost)}
    print(f"ledger: {json.dumps(figures)}")
    assert not lost, f"{len(lost)} acknowledged writes missing, e.g. {lost[:5]}"
    stuck = [run for run in ledger.finished if stored.status.get(run) != "FINISHED"]
    assert not stuck, f"runs the client finished but not FINISHED: {stuck[:5]}"
    assert ledger.runs_finished > CLIENTS, "the load hardly ran"
    # The server serves what the database and bucket hold, not only they.
    client = MlflowClient(stack.uri)
    for run_id in sorted(ledger.artifacts)[:5]:
        assert client.get_run(run_id).data.params["run"] == run_id
        path = client.download_artifacts(run_id, "notes/ledger.txt", str(tmp_path))
        assert file_sha256(path) == ledger.artifacts[run_id]


@dataclass
class Stored:
    """What the backing stores hold for the experiment, read directly."""

    status: dict[str, str]
    params: set[tuple[str, str, str]]
    metrics: set[tuple[str, int, float]]
    artifacts: dict[str, str]  # run -> sha256 of notes/ledger.txt


@dataclass
class Ledger:
    """Every write the server acknowledged, the client's errors, and call latencies."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    runs: set[str] = field(default_factory=set)
    params: set[tuple[str, str, str]] = field(default_factory=set)
    metrics: set[tuple[str, int, float]] = field(default_factory=set)
    artifacts: dict[str, str] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    errors: list[tuple[float, str, str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    def call(self, started: float, name: str, function, *args, **kwargs):
        """Run one client call; True (or its result) if acknowledged, None on an error."""
        begun = time.monotonic()
        try:
            result = function(*args, **kwargs)
        except Exception as error:  # any failure the client saw counts as one error
            with self.lock:
                self.errors.append((round(begun - started, 1), name, type(error).__name__))
            return None
        with self.lock:
            self.latencies.append(time.monotonic() - begun)
        return True if result is None else result

    @property
    def runs_finished(self) -> int:
        return len(self.finished)

    def missing_from(self, stored: Stored) -> list[str]:
        missing = [f"run {r}" for r in self.runs if r not in stored.status]
        missing += [f"param {p}" for p in self.params - stored.params]
        missing += [f"metric {m}" for m in self.metrics - stored.metrics]
        missing += [
            f"artifact of {run}"
            for run, digest in self.artifacts.items()
            if stored.artifacts.get(run) != digest
        ]
        return missing

    def figures(self, seconds: float) -> dict:
        ordered = sorted(self.latencies)
        return {
            "clients": CLIENTS,
            "seconds": seconds,
            "runs_finished": len(self.finished),
            "runs_per_s": round(len(self.finished) / seconds, 2),
            "calls_acknowledged": len(ordered),
            "p50_call_s": round(ordered[len(ordered) // 2], 3),
            "p99_call_s": round(ordered[int(len(ordered) * 0.99)], 3),
            "acknowledged": {
                "runs": len(self.runs),
                "params": len(self.params),
                "metric_steps": len(self.metrics),
                "artifacts": len(self.artifacts),
            },
            "client_errors": len(self.errors),
            "errors_at_s": [e[0] for e in self.errors],
        }


def client_loop(uri: str, experiment_id: str, index: int, until: float, ledger: Ledger) -> None:
    """One data scientist's loop: run, params, metrics with steps, a small artifact, done."""
    client = MlflowClient(uri)
    started = until - LOAD_S
    sequence = 0
    while time.monotonic() < until:
        sequence += 1
        run = ledger.call(started, "create_run", client.create_run, experiment_id)
        if run is None:
            continue
        run_id = run.info.run_id
        with ledger.lock:
            ledger.runs.add(run_id)
        params = [Param("run", run_id), Param("client", str(index))]
        # Dyadic values: exact in binary and in MySQL's text output alike.
        metrics = [
            Metric("loss", index * 1000 + sequence + step / 4, int(time.time() * 1000), step)
            for step in range(STEPS)
        ]
        if ledger.call(started, "log_batch", client.log_batch, run_id, metrics, params):
            with ledger.lock:
                ledger.params |= {(run_id, p.key, p.value) for p in params}
                ledger.metrics |= {(run_id, m.step, m.value) for m in metrics}
        text = f"{run_id} client {index} run {sequence}\n" * 20
        if ledger.call(started, "log_text", client.log_text, run_id, text, "notes/ledger.txt"):
            with ledger.lock:
                ledger.artifacts[run_id] = hashlib.sha256(text.encode()).hexdigest()
        if ledger.call(started, "set_terminated", client.set_terminated, run_id):
            with ledger.lock:
                ledger.finished.add(run_id)


def inject_faults(stack: FaultStack, started: float) -> list[dict]:
    """The faults, in order, during the load; how long each took to be over."""
    log = []
    for name, at in FAULTS.items():
        time.sleep(max(0, started + at - time.monotonic()))
        begun = time.monotonic()
        if name == "restart MySQL":
            stack.mysql.container.get_wrapped_container().restart(timeout=10)
        elif name == "restart MinIO":
            stack.minio.container.get_wrapped_container().restart(timeout=10)
        else:
            kill_main_process(stack.server)
        back = stack.wait_until_ready()  # MLflow's /ready: the server reaches its database
        log.append(
            {
                "fault": name,
                "at_s": round(begun - started, 1),
                "ready_after_s": round(time.monotonic() - begun, 1),
                "waited_for_ready_s": round(back, 1),
            }
        )
    restarts, _ = stack.server_state()
    assert restarts >= 1, "Docker did not restart the killed server"
    return log


def _select(stack: FaultStack, sql: str) -> list[list[str]]:
    output = stack.mysql.execute_as_root(f"USE {stack.mysql.database}; {sql}")
    return [line.split("\t") for line in output.splitlines()[1:]]


def read_back(stack: FaultStack, experiment_id: str) -> Stored:
    """Everything stored for the experiment, from MySQL and the bucket themselves."""
    in_experiment = f"run_uuid IN (SELECT run_uuid FROM runs WHERE experiment_id = {experiment_id})"
    status = dict(
        _select(stack, f"SELECT run_uuid, status FROM runs WHERE experiment_id = {experiment_id}")
    )
    params = {
        (r, k, v)
        for r, k, v in _select(
            stack, f"SELECT run_uuid, `key`, value FROM params WHERE {in_experiment}"
        )
    }
    metrics = {
        (r, int(s), float(v))
        for r, s, v in _select(
            stack, f"SELECT run_uuid, step, value FROM metrics WHERE {in_experiment}"
        )
    }
    s3 = stack.minio.s3()
    prefix = f"artifacts/{experiment_id}/"
    artifacts = {}
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.minio.bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith("/artifacts/notes/ledger.txt"):
                run_id = item["Key"][len(prefix) :].split("/")[0]
                body = s3.get_object(Bucket=stack.minio.bucket, Key=item["Key"])["Body"].read()
                artifacts[run_id] = hashlib.sha256(body).hexdigest()
    return Stored(status, params, metrics, artifacts)


# --- a 1 GiB artifact through the proxy -------------------------------------------------------

GIB = 1 << 30
CHUNK = 8 << 20


def write_random_file(path: Path, size: int) -> str:
    """Write size pseudo-random bytes in chunks; return their sha256."""
    digest = hashlib.sha256()
    generator = random.Random(13)
    with path.open("wb") as handle:
        for _ in range(size // CHUNK):
            chunk = generator.randbytes(CHUNK)
            digest.update(chunk)
            handle.write(chunk)
    return digest.hexdigest()


def file_sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.fault
def test_one_gib_artifact_through_the_proxy(stack: FaultStack, tmp_path: Path) -> None:
    """Up and down through the server's artifact proxy: the same bytes come back, and the
    server streams them (its memory grows by far less than the artifact). How fast:
    scripts/benchmarks/artifact_bench.py."""
    source = tmp_path / "big.bin"
    expected = write_random_file(source, GIB)
    client = MlflowClient(stack.uri)
    experiment_id = client.create_experiment(f"large-{time.monotonic_ns()}")
    run_id = client.create_run(experiment_id).info.run_id

    with MemorySampler(stack.server) as memory:
        baseline = memory.samples[0]
        client.log_artifact(run_id, str(source), "large")
        source.unlink()
        downloaded = client.download_artifacts(run_id, "large/big.bin", str(tmp_path / "down"))
    assert file_sha256(downloaded) == expected
    # The bucket holds the very bytes (read back from MinIO itself).
    key = f"artifacts/{experiment_id}/{run_id}/artifacts/large/big.bin"
    stored = stack.minio.s3().get_object(Bucket=stack.minio.bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    while chunk := stored.read(CHUNK):
        digest.update(chunk)
    assert digest.hexdigest() == expected
    memory_mib = {
        "server_rss_baseline_mib": baseline >> 20,
        "server_rss_peak_mib": memory.peak >> 20,
        "memory_samples": len(memory.samples),
    }
    print(f"large artifact: {json.dumps(memory_mib)}")
    # Streamed, never held: the server's own memory grows by far less than the artifact.
    assert memory.peak - baseline < 384 << 20, memory_mib
