#!/usr/bin/env python3
"""Stock `mlflow models serve` against the mlstack inference image: same model, same load.

Both servers run side by side on this machine and serve one MLflow model (a 100-tree
RandomForestRegressor on scikit-learn's diabetes data, saved as the training image saves
it). wrk drives each in turn, never both at once, with the same one-row JSON request:
the reference's `df.iloc[[0]].to_json(orient="split")` wrapped as {"dataframe_split": ...},
the form stock MLflow (>= 2.0) accepts. Traffic goes to 127.0.0.1 only and every run is
bounded in time. Prints requests/s, p50 and p99 for each, and the ratios against the
targets (>= 10x the requests/s, <= 1/10 of the p99).

Needs: the host venv (mlflow, uvicorn; run this with its python), Docker, wrk
(`apt-get install -y wrk`), and the image (`make build-inference`).

    .venv/bin/python scripts/benchmarks/inference_bench.py --duration 20 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from mlstack import version
from mlstack.core.ports import free_port
from mlstack.core.waiting import TimedOut, until_ok

DEFAULT_IMAGE = f"mlstack/inference:{version()}"
TARGET_THROUGHPUT_RATIO = 10.0
TARGET_P99_RATIO = 0.1
WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
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


class BenchError(Exception):
    """Something the benchmark needs is missing or failed; the message says what."""


@dataclass
class Result:
    """One wrk run against one server."""

    server: str
    payload: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def make_model(path: Path) -> tuple[Path, str]:
    """The reference's model, saved as the training image saves it; and one-row JSON."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import train_test_split

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, _ = train_test_split(features, target, random_state=42)
    model = RandomForestRegressor(n_estimators=100, random_state=0).fit(x_train, y_train)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(x_train, model.predict(x_train)),
        input_example=x_train.iloc[:5],
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    for item in [path, *path.rglob("*")]:  # readable by the image's non-root user
        item.chmod(0o755 if item.is_dir() else 0o644)
    return path, x_test.iloc[[0]].to_json(orient="split")


def wait_for_ping(url: str, what: str, started: float, timeout: float, alive) -> float:
    """Seconds from `started` (time.monotonic) until GET url/ping answers 200."""

    def check_alive() -> None:
        if not alive():
            raise BenchError(f"{what} exited before answering /ping")

    remaining = max(0.0, timeout - (time.monotonic() - started))
    try:
        until_ok(f"{url}/ping", remaining, 0.2, check_alive)
        return time.monotonic() - started
    except TimedOut:
        raise BenchError(f"{what} did not answer /ping within {timeout:.0f} s") from None


def post(url: str, body: str) -> tuple[int, str]:
    response = requests.post(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    return response.status_code, response.text


def run_wrk(
    url: str, body: str, duration: int, connections: int, threads: int, work: Path
) -> dict[str, float]:
    script = work / f"post-{uuid.uuid4().hex[:6]}.lua"
    script.write_text(WRK_SCRIPT.format(body=body))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"{url}/invocations",
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 60, check=True
    ).stdout
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise BenchError(f"wrk printed no result:\n{output}")


def measure(
    name: str, label: str, url: str, body: str, args: argparse.Namespace, work: Path
) -> Result:
    run_wrk(url, body, args.warmup, args.connections, args.threads, work)
    raw = run_wrk(url, body, args.duration, args.connections, args.threads, work)
    result = Result(
        server=name,
        payload=label,
        requests_per_s=raw["requests"] / (raw["duration_us"] / 1e6),
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        requests=int(raw["requests"]),
        non_2xx=int(raw["non_2xx"]),
        socket_errors=int(raw["socket_errors"]),
    )
    print(
        f"  {name:<8} {label:<16} {result.requests_per_s:9.1f} req/s  p50 {result.p50_ms:7.2f} ms"
        f"  p99 {result.p99_ms:7.2f} ms  non-2xx {result.non_2xx}  socket errors "
        f"{result.socket_errors}",
        flush=True,
    )
    return result


def start_stock(model: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    """`mlflow models serve -w N --env-manager local` from this venv (uvicorn on PATH)."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "mlflow").exists() or not (bin_dir / "uvicorn").exists():
        raise BenchError(f"run this with the host venv's python: no mlflow/uvicorn in {bin_dir}")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    command = [
        str(bin_dir / "mlflow"),
        "models",
        "serve",
        "-m",
        str(model),
        "--env-manager",
        "local",
        "-w",
        str(workers),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    with open(log, "w") as handle:
        return subprocess.Popen(
            command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def start_image(image: str, model: Path, port: int, workers: int, network: str) -> str:
    """The image as SageMaker starts it (`serve`), reachable on 127.0.0.1:port only."""
    name = f"mlstack-inference-bench-{uuid.uuid4().hex[:8]}"
    command = ["docker", "run", "-d", "--name", name, "-v", f"{model}:/opt/ml/model:ro"]
    command += ["-e", f"SAGEMAKER_MODEL_SERVER_WORKERS={workers}"]
    if network == "host":
        # Same network path as the stock server: no docker-proxy hop.
        command += ["--network", "host", "-e", f"SAGEMAKER_BIND_TO_PORT={port}"]
        command += ["-e", f"GUNICORN_CMD_ARGS=--bind=127.0.0.1:{port}"]
    else:
        command += ["-p", f"127.0.0.1:{port}:8080"]
    command += [image, "serve"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return name


def container_running(name: str) -> bool:
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True
    )
    return state.stdout.strip() == "true"


def image_size_mb(image: str) -> float:
    size = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(size) / 1e6


def summarize(results: list[Result], name: str, label: str) -> Result:
    """One server's runs reduced to the median of each figure."""
    runs = [r for r in results if r.server == name and r.payload == label]
    return Result(
        server=name,
        payload=label,
        requests_per_s=statistics.median(r.requests_per_s for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
        requests=sum(r.requests for r in runs),
        non_2xx=sum(r.non_2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
    )


def report(results: list[Result], args: argparse.Namespace, image_mb: float) -> bool:
    stock = summarize(results, "stock", "dataframe_split")
    ours = summarize(results, "mlstack", "dataframe_split")
    throughput = ours.requests_per_s / stock.requests_per_s
    p99 = ours.p99_ms / stock.p99_ms
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print()
    print(
        f"machine: {os.cpu_count()} cores, {memory_gib:.0f} GiB; wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s, {args.rounds} round(s), medians; "
        f"{args.workers} workers each"
    )
    print("| server | requests/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for result in (stock, ours):
        print(
            f"| {result.server} | {result.requests_per_s:.1f} | {result.p50_ms:.2f} | "
            f"{result.p99_ms:.2f} |"
        )
    bare = [r for r in results if r.payload == "reference-bare"]
    if bare:
        print(
            f"| mlstack, bare reference payload | {bare[0].requests_per_s:.1f} | "
            f"{bare[0].p50_ms:.2f} | {bare[0].p99_ms:.2f} |"
        )
    met_throughput = throughput >= TARGET_THROUGHPUT_RATIO
    met_p99 = p99 <= TARGET_P99_RATIO
    print(
        f"requests/s ratio: {throughput:.1f}x (target >= {TARGET_THROUGHPUT_RATIO:.0f}x: "
        f"{'met' if met_throughput else 'NOT met'})"
    )
    print(
        f"p99 ratio: {p99:.3f} = 1/{1 / p99:.1f} (target <= 1/{1 / TARGET_P99_RATIO:.0f}: "
        f"{'met' if met_p99 else 'NOT met'})"
    )
    print(f"image {args.image}: {image_mb:.0f} MB")
    errors = sum(r.non_2xx + r.socket_errors for r in results)
    if errors:
        print(f"warning: {errors} failed requests in total (non-2xx or socket errors)")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "results": [asdict(r) for r in results],
                    "throughput_ratio": throughput,
                    "p99_ratio": p99,
                    "image_mb": image_mb,
                },
                indent=2,
            )
        )
    return met_throughput and met_p99 and not errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--duration", type=int, default=20, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="server workers, both servers")
    parser.add_argument(
        "--network",
        choices=["host", "bridge"],
        default="host",
        help="host: the container shares the host's loopback like the stock server; "
        "bridge: a published port through docker-proxy",
    )
    parser.add_argument("--model-dir", type=Path, help="serve this MLflow model instead")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--check", action="store_true", help="exit 1 unless both targets are met")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 1 <= args.rounds <= 5:
        parser.error("--duration must be 1-300 s and --rounds 1-5 (the run stays bounded)")
    return args


def run(args: argparse.Namespace, work: Path) -> bool:
    for tool in ("wrk", "docker"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} not found: apt-get install -y {tool}")
    if args.model_dir:
        model = args.model_dir.resolve()
        body_row = None
    else:
        model, body_row = make_model(work / "model")
    if body_row is None:
        example = json.loads((model / "serving_input_example.json").read_text())
        split = example["dataframe_split"]
        body_row = json.dumps({**split, "data": split["data"][:1]})
    wrapped = json.dumps({"dataframe_split": json.loads(body_row)})
    stock_port, our_port = free_port(), free_port()
    stock_started = time.monotonic()
    stock = start_stock(model, stock_port, args.workers, work / "stock.log")
    container = None
    try:
        our_started = time.monotonic()
        container = start_image(args.image, model, our_port, args.workers, args.network)
        stock_url, our_url = f"http://127.0.0.1:{stock_port}", f"http://127.0.0.1:{our_port}"
        waited = wait_for_ping(
            stock_url, "stock mlflow", stock_started, 180, lambda: stock.poll() is None
        )
        print(f"stock mlflow models serve: /ping 200 {waited:.1f} s after start", flush=True)
        waited = wait_for_ping(
            our_url, "the image", our_started, 180, lambda: container_running(container)
        )
        print(f"{args.image}: /ping 200 {waited:.1f} s after start", flush=True)
        stock_answer, our_answer = post(stock_url, wrapped), post(our_url, wrapped)
        if stock_answer[0] != 200 or our_answer[0] != 200:
            raise BenchError(f"a server refused the request: {stock_answer} / {our_answer}")
        if json.loads(stock_answer[1]) != json.loads(our_answer[1]):
            raise BenchError(f"predictions differ: {stock_answer[1]} vs {our_answer[1]}")
        bare_status = post(stock_url, body_row)[0]
        print(f"same prediction from both: {our_answer[1]}")
        print(
            f"bare reference payload: stock answers {bare_status}, mlstack answers "
            f"{post(our_url, body_row)[0]}"
        )
        results = []
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}/{args.rounds}:", flush=True)
            results.append(measure("stock", "dataframe_split", stock_url, wrapped, args, work))
            results.append(measure("mlstack", "dataframe_split", our_url, wrapped, args, work))
        results.append(measure("mlstack", "reference-bare", our_url, body_row, args, work))
        return report(results, args, image_size_mb(args.image))
    finally:
        if container is not None:
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        if stock.poll() is None:
            os.killpg(stock.pid, signal.SIGTERM)  # the session this script started
            try:
                stock.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(stock.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="inference-bench-") as work:
        try:
            met = run(args, Path(work))
        except (BenchError, subprocess.CalledProcessError) as error:
            print(f"inference-bench: error: {error}", file=sys.stderr)
            return 1
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
