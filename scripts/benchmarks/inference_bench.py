#!/usr/bin/env python3
"""Inference side by side: mlstack against stock MLflow, MLServer and the stack's ceiling.

For each model type (inference_models.py: the training image's forest, a forest classifier
answering labels and one answering probabilities, the example's GradientBoostingRegressor,
a HistGradientBoostingRegressor, a StandardScaler + Ridge pipeline) every server serves the
same model on this machine, all in containers or all as processes (--placement;
inference_peers.py): mlstack with its fast path on and off, stock `mlflow models serve`,
MLServer's scikit-learn and MLflow runtimes with adaptive batching off and on, and the
ceiling (uvicorn answering a constant). wrk drives one server at a time with the same
one-row request in each server's protocol (-t2 -c8 by default), the servers alternating
within each round and their order rotating between rounds; figures are medians over the
rounds. Besides requests/s and latency, each run records the CPU time the server used per
request (its container's cgroup, or its processes'), which the machine's other load
disturbs much less than requests/s.

Checked before measuring: mlstack answers the whole test set, and each of its first rows
alone, exactly as the model's own predict does; the peers' answers are compared too.
Batch: a 1,000-row CSV request (Accept: text/csv), one at a time and one per worker at a
time, in rows/s, against scikit-learn's own predict on the same rows in one process (the
same image or venv, its thread pools as they come). /ping is timed during mlstack's runs,
and its peak memory read after them.

Traffic goes to 127.0.0.1 only; every run is bounded in time; every server is stopped.
Needs: the host venv (run with its python), wrk (`apt-get install -y wrk`); in Docker the
image (`make build-inference`), the peers' images being built on first use (PyPI); as
processes a venv with MLServer (--mlserver-venv).

    .venv/bin/python scripts/benchmarks/inference_bench.py --rounds 3 --models forest
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import inference_models
import numpy as np
import pandas as pd
import requests
from inference_peers import (
    ROOT,
    BenchError,
    Launch,
    Placement,
    Server,
    ensure_image,
    mlserver_repository,
    mlserver_requirements,
    stock_requirements,
)

from mlstack import version
from mlstack.core.waiting import TimedOut, until_ok

DEFAULT_IMAGE = f"mlstack/inference:{version()}"
SERVERS = (
    "ceiling",
    "mlstack",
    "mlstack-generic",
    "mlstack-before",
    "stock",
    "mlserver-sk",
    "mlserver-sk-batch",
    "mlserver-mlflow",
    "mlserver-mlflow-batch",
)
MLSERVER_SERVERS = tuple(name for name in SERVERS if name.startswith("mlserver"))
BATCH_ROWS = 1000
READY_TIMEOUT = 300
# The goals.
CEILING_SHARE = 0.6
FOREST_OVER_MLSERVER = 10.0
FOREST_P99_SHARE = 0.2
OTHERS_OVER_STOCK = 3.0
BATCH_SHARE = 0.8
PING_BUDGET_MS = 2000
WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
wrk.headers["Accept"] = "{accept}"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {{\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"max_us\\": %d, \\"non_2xx\\": %d, \\"socket_errors\\": %d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""
IN_PROCESS = """
import json, sys, time
import mlflow.pyfunc, pandas as pd
method, seconds, model, rows = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
predict = getattr(mlflow.pyfunc.load_model(model).get_raw_model(), method)
rows = pd.read_csv(rows)
predict(rows)
calls, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    predict(rows)
    calls += 1
print(json.dumps({"rows_per_s": calls * len(rows) / (time.perf_counter() - start)}))
"""


@dataclass
class Target:
    """One server serving one model: what wrk sends it, where."""

    server: str
    container: Server
    path: str
    body: str
    content_type: str = "application/json"
    accept: str = "application/json"
    ping: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.container.port}"


@dataclass
class Result:
    """One wrk run against one server."""

    model: str
    server: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    cpu_us: float | None = None
    ping_max_ms: float | None = None


@dataclass
class Batch:
    """Batch rows/s of one model: mlstack one request at a time and one per worker, and
    scikit-learn's predict in one process."""

    model: str
    sequential: float
    per_worker: float
    in_process: float


@dataclass
class Checked:
    """How each server's answer to the first test row compares with the model's own."""

    model: str
    answers: dict[str, str] = field(default_factory=dict)


# --- requests in each server's protocol ---------------------------------------------------


def one_row_json(row: pd.DataFrame) -> str:
    """The row as MLflow's scoring protocol takes it: {"dataframe_split": ...}."""
    return json.dumps({"dataframe_split": json.loads(row.to_json(orient="split"))})


def v2_tensor(row: pd.DataFrame, method: str) -> str:
    """The row as one [1, columns] FP64 tensor (MLServer's scikit-learn runtime)."""
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(row.shape),
                "datatype": "FP64",
                "data": row.to_numpy().ravel().tolist(),
            }
        ]
    }
    if method != "predict":
        body["outputs"] = [{"name": method}]
    return json.dumps(body)


def v2_columns(row: pd.DataFrame) -> str:
    """The row as one [1, 1] FP64 input per column (MLServer's MLflow runtime enforces the
    signature that way)."""
    inputs = [
        {"name": str(name), "shape": [len(row), 1], "datatype": "FP64", "data": row[name].tolist()}
        for name in row.columns
    ]
    return json.dumps({"inputs": inputs})


def answer_values(server: str, text: str) -> list:
    """The predictions in a server's answer, flattened."""
    document = json.loads(text)
    if server.startswith("mlserver"):
        return list(np.ravel(document["outputs"][0]["data"]))
    return list(np.ravel(np.asarray(document["predictions"], dtype=object)))


# --- servers -------------------------------------------------------------------------------


def wait_ready(url: str, what: str, server: Server) -> None:
    def alive() -> None:
        if not server.running():
            raise BenchError(f"{what} exited before it was ready:\n{server.logs()[-3000:]}")

    try:
        until_ok(url, READY_TIMEOUT, 0.5, alive)
    except TimedOut:
        raise BenchError(f"{what} was not ready within {READY_TIMEOUT} s") from None


def start_ceiling(placement: Placement, image: str, workers: int) -> Server:
    host = "127.0.0.1" if placement.kind != "docker-bridge" else "0.0.0.0"
    args = ["--app-dir", "{bench}", "--workers", str(workers), "--loop", "uvloop"]
    args += ["--http", "httptools", "--no-access-log", "--no-server-header"]
    args += ["--no-proxy-headers", "--lifespan", "off", "--host", host, "--port", "{port}"]
    args.append("ceiling_app:app")
    launch = Launch("ceiling", image, args, 8080, ["uvicorn", *args], entrypoint="uvicorn")
    server = placement.start(launch)
    wait_ready(f"http://127.0.0.1:{server.port}/ping", "the ceiling", server)
    return server


def start_mlstack(
    placement: Placement, image: str, model_dir: Path, workers: int, label: str
) -> Server:
    """mlstack (fast path on), mlstack-generic (off) or mlstack-before (another build)."""
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
    if label == "mlstack-generic":
        env["INFERENCE_FAST_PATH"] = "false"
    if placement.kind != "docker-bridge":
        env["SAGEMAKER_BIND_TO_PORT"] = "{port}"
        env["GUNICORN_CMD_ARGS"] = "--bind=127.0.0.1:{port}"
    command = ["python", "-m", "mlstack.serving.entrypoint", "serve"]
    launch = Launch(label, image, ["serve"], 8080, command, env, {"MODEL_URI": "{model}"})
    server = placement.start(launch, model_dir)
    wait_ready(f"http://127.0.0.1:{server.port}/ping", label, server)
    return server


def start_stock(placement: Placement, image: str, name: str, workers: int) -> Server:
    host = "127.0.0.1" if placement.kind != "docker-bridge" else "0.0.0.0"
    args = ["mlflow", "models", "serve", "-m", f"{{models}}/{name}/mlflow", "--env-manager"]
    args += ["local", "-w", str(workers), "-h", host, "-p", "{port}"]
    server = placement.start(Launch("stock", image, args, 5000, args))
    wait_ready(f"http://127.0.0.1:{server.port}/ping", "stock mlflow", server)
    return server


def start_mlserver(
    placement: Placement, image: str, work: Path, models: dict[str, Any], workers: int
) -> Server:
    from mlstack.core.ports import free_port

    ports = [free_port() for _ in range(3)] if placement.kind != "docker-bridge" else None
    mlserver_repository(
        work,
        {name: (m.joblib_file, m.mlflow_dir) for name, m in models.items()},
        workers,
        ports,
        placement.paths(None)["models"],
    )
    args = ["mlserver", "start", "{repository}"]
    server = placement.start(Launch("mlserver", image, args, 8080, args))
    if ports:
        server.port = ports[0]
    url = f"http://127.0.0.1:{server.port}"
    wait_ready(f"{url}/v2/health/ready", "MLServer", server)
    for name in models:
        for variant in ("sk", "sk-batch", "mlflow", "mlflow-batch"):
            wait_ready(f"{url}/v2/models/{name}-{variant}/ready", f"MLServer {name}", server)
    return server


def targets_for(
    model: Any, row: pd.DataFrame, servers: list[str], containers: dict[str, Server]
) -> list[Target]:
    """What each server is sent for the one-row request."""
    ours = one_row_json(row)
    targets = []
    for server in servers:
        container = containers[server]
        if server == "ceiling" or server == "stock" or server.startswith("mlstack"):
            ping = "/ping" if server.startswith("mlstack") else None
            targets.append(Target(server, container, "/invocations", ours, ping=ping))
            continue
        runtime = server.removeprefix("mlserver-")
        body = v2_tensor(row, model.method) if runtime.startswith("sk") else v2_columns(row)
        targets.append(Target(server, container, f"/v2/models/{model.name}-{runtime}/infer", body))
    return targets


# --- measuring -----------------------------------------------------------------------------


def run_wrk(target: Target, seconds: int, connections: int, threads: int, work: Path) -> dict:
    script = work / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(
        WRK_SCRIPT.format(body=target.body, content_type=target.content_type, accept=target.accept)
    )
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    command += ["-s", str(script), f"{target.url}{target.path}"]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise BenchError(f"wrk printed no result:\n{output}")


class PingWatch:
    """GET /ping every 0.25 s while a load runs; the slowest answer (a failure counts as
    the timeout)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.wait(0.25):
            started = time.monotonic()
            try:
                ok = requests.get(self.url, timeout=PING_BUDGET_MS / 1000 * 2).status_code == 200
            except requests.RequestException:
                ok = False
            took = (time.monotonic() - started) * 1000 if ok else PING_BUDGET_MS * 2
            self.slowest = max(self.slowest, took)

    def __enter__(self) -> PingWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def measure(model: str, target: Target, args: argparse.Namespace, work: Path) -> Result:
    run_wrk(target, args.warmup, args.connections, args.threads, work)
    cpu_before = target.container.cpu_seconds()
    watch = PingWatch(f"{target.url}{target.ping}") if target.ping else None
    if watch:
        watch.__enter__()
    try:
        raw = run_wrk(target, args.duration, args.connections, args.threads, work)
    finally:
        if watch:
            watch.__exit__()
    cpu_after = target.container.cpu_seconds()
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and raw["requests"]:
        cpu_us = (cpu_after - cpu_before) / raw["requests"] * 1e6
    result = Result(
        model=model,
        server=target.server,
        requests_per_s=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        requests=int(raw["requests"]),
        non_2xx=int(raw["non_2xx"]),
        socket_errors=int(raw["socket_errors"]),
        cpu_us=cpu_us,
        ping_max_ms=watch.slowest if watch else None,
    )
    cpu = f"{cpu_us:6.0f}" if cpu_us is not None else "     -"
    print(
        f"  {target.server:<22} {result.requests_per_s:9.1f} req/s  p50 {result.p50_ms:7.2f} ms"
        f"  p99 {result.p99_ms:7.2f} ms  CPU {cpu} us/req  errors "
        f"{result.non_2xx + result.socket_errors}",
        flush=True,
    )
    return result


def check_answers(model: Any, data: inference_models.Data, targets: list[Target]) -> Checked:
    """mlstack: every test row exactly as the model predicts it, whole and alone; the
    others: the first row, compared with the model's own answer."""
    checked = Checked(model.name)
    expected = model.predict(data.test.iloc[[0]]).ravel().tolist()
    for target in targets:
        if target.server == "ceiling":
            continue
        response = requests.post(
            f"{target.url}{target.path}",
            data=target.body,
            headers={"Content-Type": target.content_type},
            timeout=30,
        )
        if response.status_code != 200:
            raise BenchError(f"{target.server} refused the request: {response.text[:500]}")
        got = answer_values(target.server, response.text)
        gap = float(np.max(np.abs(np.asarray(got, float) - np.asarray(expected, float))))
        checked.answers[target.server] = "exact" if got == expected else f"off by {gap:.3g}"
        if target.server.startswith("mlstack"):
            exact_on_test_set(model, data, target)
    return checked


def exact_on_test_set(model: Any, data: inference_models.Data, target: Target) -> None:
    rows = data.test
    whole = requests.post(
        f"{target.url}/invocations",
        data=json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))}),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    if whole.json()["predictions"] != model.predict(rows).tolist():
        raise BenchError(f"{target.server} does not answer the test set as the model does")
    for index in range(20):
        one = requests.post(
            f"{target.url}/invocations",
            data=one_row_json(rows.iloc[[index]]),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        if one.json()["predictions"] != model.predict(rows.iloc[[index]]).tolist():
            raise BenchError(f"{target.server} answers test row {index} alone otherwise")


def batch_rows(data: inference_models.Data, work: Path, name: str) -> tuple[Path, str]:
    """BATCH_ROWS test rows (repeated) as CSV with a header: the file and its text."""
    rows = pd.concat([data.test] * (BATCH_ROWS // len(data.test) + 1)).iloc[:BATCH_ROWS]
    path = work / f"batch-{name}.csv"
    text = rows.to_csv(index=False)
    path.write_text(text)
    path.chmod(0o644)
    return path, text


def measure_batch(
    model: Any,
    data: inference_models.Data,
    container: Server,
    args: argparse.Namespace,
    work: Path,
) -> Batch:
    csv_file, text = batch_rows(data, work, model.name)
    target = Target("mlstack", container, "/invocations", text, "text/csv", "text/csv")
    answer = requests.post(
        f"{target.url}/invocations",
        data=text,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
        timeout=60,
    )
    rows = pd.read_csv(csv_file)
    expected = np.asarray(model.predict(rows))
    got = np.array(
        [[float(cell) for cell in line.split(",")] for line in answer.text.splitlines()]
    ).reshape(expected.shape)
    if not np.array_equal(got, expected):
        raise BenchError(f"{model.name}: the batch answer differs from the model's predict")
    sequential = run_wrk(target, args.duration, 1, 1, work)
    per_worker = run_wrk(target, args.duration, args.workers, min(args.workers, 2), work)
    if args.placement.startswith("docker"):
        command = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python"]
        command += ["-v", f"{model.mlflow_dir}:/model:ro", "-v", f"{csv_file}:/batch.csv:ro"]
        command += [args.image, "-c", IN_PROCESS, model.method, str(args.duration)]
        command += ["/model", "/batch.csv"]
    else:
        command = [sys.executable, "-c", IN_PROCESS, model.method, str(args.duration)]
        command += [str(model.mlflow_dir), str(csv_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration + 180)
    if done.returncode != 0:
        raise BenchError(f"in-process predict failed: {done.stderr[-2000:]}")
    in_process = json.loads(done.stdout.strip().splitlines()[-1])["rows_per_s"]

    def rows_per_s(raw: dict) -> float:
        return raw["requests"] / (raw["duration_us"] / 1e6) * BATCH_ROWS

    batch = Batch(model.name, rows_per_s(sequential), rows_per_s(per_worker), in_process)
    print(
        f"  batch {BATCH_ROWS} rows: mlstack {batch.sequential:,.0f} rows/s one at a time, "
        f"{batch.per_worker:,.0f} with {args.workers} at a time; scikit-learn in one process "
        f"{batch.in_process:,.0f} rows/s",
        flush=True,
    )
    return batch


# --- the report ----------------------------------------------------------------------------


def median_result(results: list[Result], model: str, server: str) -> Result | None:
    runs = [r for r in results if r.model == model and r.server == server]
    if not runs:
        return None
    cpus = [r.cpu_us for r in runs if r.cpu_us is not None]
    pings = [r.ping_max_ms for r in runs if r.ping_max_ms is not None]
    return Result(
        model=model,
        server=server,
        requests_per_s=statistics.median(r.requests_per_s for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
        requests=sum(r.requests for r in runs),
        non_2xx=sum(r.non_2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        cpu_us=statistics.median(cpus) if cpus else None,
        ping_max_ms=max(pings) if pings else None,
    )


def goals(model: str, by_server: dict[str, Result], batch: Batch | None) -> list[str]:
    """The issue's goals for this model, each with the figure measured."""
    lines = []
    ours, stock = by_server.get("mlstack"), by_server.get("stock")
    ceiling = by_server.get("ceiling")
    batching = ("mlserver-sk-batch", "mlserver-mlflow-batch")
    batched = [by_server[server] for server in batching if server in by_server]
    best = max(batched, key=lambda r: r.requests_per_s) if batched else None

    def line(text: str, met: bool) -> None:
        lines.append(f"{text}: {'met' if met else 'NOT met'}")

    if ours is None:
        return lines
    if model == "forest":
        if ceiling:
            share = ours.requests_per_s / ceiling.requests_per_s
            line(f"{share:.2f} of the ceiling (goal >= {CEILING_SHARE})", share >= CEILING_SHARE)
        if best:
            over = ours.requests_per_s / best.requests_per_s
            p99 = ours.p99_ms / best.p99_ms
            line(f"{over:.1f}x {best.server} (goal >= {FOREST_OVER_MLSERVER:g}x)", over >= 10)
            line(f"p99 {p99:.2f} of {best.server}'s (goal <= {FOREST_P99_SHARE})", p99 <= 0.2)
    else:
        if stock:
            over = ours.requests_per_s / stock.requests_per_s
            line(f"{over:.1f}x stock (goal >= {OTHERS_OVER_STOCK:g}x)", over >= OTHERS_OVER_STOCK)
        if best:
            over = ours.requests_per_s / best.requests_per_s
            line(f"{over:.2f}x {best.server} (goal >= 1x)", over >= 1)
    if batch:
        share = batch.per_worker / batch.in_process
        line(
            f"batch {share:.2f} of in-process predict with one request per worker, "
            f"{batch.sequential / batch.in_process:.2f} one at a time (goal >= {BATCH_SHARE})",
            share >= BATCH_SHARE,
        )
    if ours.ping_max_ms is not None:
        line(f"/ping at most {ours.ping_max_ms:.0f} ms under the load (goal < 2 s)", True)
    return lines


def ratios(result: Result, stock: Result | None) -> str:
    """requests/s, p50 and p99 over stock MLflow's, as table cells."""
    if stock is None:
        return "- | - | -"
    return (
        f"{result.requests_per_s / stock.requests_per_s:.2f} | "
        f"{result.p50_ms / stock.p50_ms:.2f} | {result.p99_ms / stock.p99_ms:.2f}"
    )


def report(
    results: list[Result],
    batches: list[Batch],
    checks: list[Checked],
    memory: dict[str, float],
    args: argparse.Namespace,
) -> None:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print()
    print(
        f"machine: {os.cpu_count()} cores, {memory_gib:.0f} GiB, load average "
        f"{os.getloadavg()[0]:.1f}; placement {args.placement}; wrk "
        f"-t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} round(s), "
        f"medians; {args.workers} workers each"
    )
    for model in dict.fromkeys(r.model for r in results):
        by_server = {
            server: found
            for server in SERVERS
            if (found := median_result(results, model, server)) is not None
        }
        stock, ceiling = by_server.get("stock"), by_server.get("ceiling")
        print(f"\n{model}:")
        print(
            "| server | requests/s | p50 ms | p99 ms | CPU µs/request "
            "| requests/s vs stock | p50 vs stock | p99 vs stock | of ceiling |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for server, r in by_server.items():
            cpu = f"{r.cpu_us:.0f}" if r.cpu_us is not None else "-"
            over = ratios(r, stock)
            share = f"{r.requests_per_s / ceiling.requests_per_s:.2f}" if ceiling else "-"
            print(
                f"| {server} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
                f"{cpu} | {over} | {share} |"
            )
        batch = next((b for b in batches if b.model == model), None)
        for line in goals(model, by_server, batch):
            print(f"- {line}")
        check = next((c for c in checks if c.model == model), None)
        if check:
            print(
                "- answers to the first test row: "
                + ", ".join(f"{server} {verdict}" for server, verdict in check.answers.items())
            )
        if model in memory:
            print(f"- mlstack peaked at {memory[model]:.0f} MiB resident")
        errors = sum(r.non_2xx + r.socket_errors for r in by_server.values())
        if errors:
            print(f"- warning: {errors} failed requests (non-2xx or socket errors)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "results": [asdict(r) for r in results],
                    "batches": [asdict(b) for b in batches],
                    "checks": [asdict(c) for c in checks],
                    "memory_mb": memory,
                    "settings": vars(args) | {"image": args.image},
                },
                indent=2,
                default=str,
            )
        )


# --- the run -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument(
        "--before-image", help="another build of the inference image, served as mlstack-before"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per server")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="server workers, every server")
    parser.add_argument(
        "--models",
        default=",".join(inference_models.MAKERS),
        help=f"comma-separated, of: {', '.join(inference_models.MAKERS)}",
    )
    parser.add_argument(
        "--servers",
        default=",".join(s for s in SERVERS if s != "mlstack-before"),
        help=f"comma-separated, of: {', '.join(SERVERS)} (mlstack-before: with --before-image)",
    )
    parser.add_argument("--no-batch", action="store_true", help="skip the 1,000-row batch")
    parser.add_argument(
        "--placement",
        choices=["docker-host", "docker-bridge", "processes"],
        default="docker-host",
        help="docker-host: every server in a container sharing the host's loopback; "
        "docker-bridge: published ports through Docker's proxy; processes: every server a "
        "process of this machine (this venv; MLServer's from --mlserver-venv)",
    )
    parser.add_argument("--mlserver-venv", type=Path, help="a venv with MLServer (processes)")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    args.models = [name.strip() for name in args.models.split(",") if name.strip()]
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = [m for m in args.models if m not in inference_models.MAKERS]
    unknown += [s for s in args.servers if s not in SERVERS]
    if unknown:
        parser.error(f"unknown model or server: {', '.join(unknown)}")
    if args.before_image and "mlstack-before" not in args.servers:
        args.servers.append("mlstack-before")
    if "mlstack-before" in args.servers and not args.before_image:
        parser.error("mlstack-before needs --before-image")
    if args.before_image and args.placement == "processes":
        parser.error("--before-image is an image: use a docker placement")
    if not 1 <= args.duration <= 120 or not 1 <= args.rounds <= 5:
        parser.error("--duration must be 1-120 s and --rounds 1-5 (the run stays bounded)")
    return args


def run(args: argparse.Namespace, work: Path) -> None:
    docker = args.placement.startswith("docker")
    for tool in ("wrk", "docker") if docker else ("wrk",):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: apt-get install -y {tool}")
    if (
        docker
        and subprocess.run(
            ["docker", "image", "inspect", args.image], capture_output=True
        ).returncode
    ):
        raise BenchError(f"no image {args.image}: make build-inference")
    data = inference_models.diabetes(work / "opt_ml")
    models = {name: inference_models.make(name, data, work / "models") for name in args.models}
    mlserving = [s for s in args.servers if s in MLSERVER_SERVERS]
    stock_image = ensure_image("stock-mlflow", stock_requirements()) if docker else ""
    mlserver_image = (
        ensure_image("mlserver", mlserver_requirements()) if docker and mlserving else ""
    )
    placement = Placement(args.placement, work, args.mlserver_venv)
    results: list[Result] = []
    batches: list[Batch] = []
    checks: list[Checked] = []
    memory: dict[str, float] = {}
    try:
        shared: dict[str, Server] = {}
        if "ceiling" in args.servers:
            shared["ceiling"] = start_ceiling(placement, args.image, args.workers)
        if mlserving:
            mlserver = start_mlserver(placement, mlserver_image, work, models, args.workers)
            shared.update({server: mlserver for server in mlserving})
        for name, model in models.items():
            print(f"\n{name} ({type(model.estimator).__name__}, {model.method}):", flush=True)
            containers = dict(shared)
            own: list[Server] = []
            for server in ("mlstack", "mlstack-generic", "mlstack-before"):
                if server in args.servers:
                    image = args.before_image if server == "mlstack-before" else args.image
                    containers[server] = start_mlstack(
                        placement, image, model.mlflow_dir, args.workers, server
                    )
                    own.append(containers[server])
            if "stock" in args.servers:
                containers["stock"] = start_stock(placement, stock_image, name, args.workers)
                own.append(containers["stock"])
            targets = targets_for(model, data.test.iloc[[0]], args.servers, containers)
            checks.append(check_answers(model, data, targets))
            for round_number in range(args.rounds):
                print(f" round {round_number + 1}/{args.rounds}:", flush=True)
                turn = round_number % len(targets)
                for target in targets[turn:] + targets[:turn]:
                    results.append(measure(name, target, args, work))
            if "mlstack" in containers and not args.no_batch:
                batches.append(measure_batch(model, data, containers["mlstack"], args, work))
            if "mlstack" in containers:
                peak = containers["mlstack"].peak_memory_mb()
                if peak is not None:
                    memory[name] = peak
            for server in own:
                placement.stop(server)
    finally:
        placement.remove_all()
    report(results, batches, checks, memory, args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Under /tmp and readable by the containers' non-root users (models, repository, CSV).
    with tempfile.TemporaryDirectory(prefix="inference-bench-") as work:
        Path(work).chmod(0o755)
        try:
            run(args, Path(work))
        except (BenchError, subprocess.CalledProcessError) as error:
            print(f"inference-bench: error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
