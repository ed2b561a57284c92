#!/usr/bin/env python3
"""What data capture and metrics cost the inference image: requests/s side by side.

Three containers of the same image serve the same model (a 100-tree RandomForestRegressor on
scikit-learn's diabetes data, saved as the training image saves it) with 2 workers each:
- `bare`: no metrics (INFERENCE_METRICS_PORT=0), no capture;
- `metrics`: the defaults (Prometheus metrics on, capture off);
- `capture`: metrics and data capture of every request (100 %) into a MinIO on the
  benchmark's own Docker network.
wrk drives one at a time, in rounds that alternate the three, with the same one-row JSON
request; traffic goes to 127.0.0.1 only and every run is bounded in time. Prints requests/s,
p50 and p99 per container (median over rounds), the ratios to `bare`, and what capture costs
against `metrics` (requests/s and latency); then checks that the capture container wrote one
record per request it answered and dropped none.

`--in-process` times instead what each part costs per request, without Docker: the request
path's `Capture.offer`, the metrics' `answered`, and the writer thread's encoding per record.

Needs: the host venv (run this with its python), Docker, wrk (`apt-get install -y wrk`), the
image (`make build-inference`) and the MinIO image (`.images.env`, or the public one).

    .venv/bin/python scripts/benchmarks/capture_bench.py --duration 15 --rounds 3
    .venv/bin/python scripts/benchmarks/capture_bench.py --in-process
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import boto3
import requests

from mlstack import ROOT, version
from mlstack.core.waiting import TimedOut, poll, until_ok

WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), summary.errors.status))
end
"""
CONFIGS = {
    "bare": {"INFERENCE_METRICS_PORT": "0"},
    "metrics": {},
    "capture": {"INFERENCE_CAPTURE_SAMPLING_PERCENTAGE": "100"},
}
BUDGET = 0.10  # capture at 100 % may cost at most this share of requests/s


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout


def minio_image() -> str:
    found = re.search(r"^MINIO_IMAGE=(.+)$", (ROOT / ".images.env").read_text(), re.M)
    return found.group(1).strip() if found else "minio/minio:RELEASE.2025-09-07T16-13-09Z"


def make_model(path: Path) -> str:
    """The reference's forest saved as the training image saves it; a one-row request."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    features, target = load_diabetes(return_X_y=True, as_frame=True)
    model = RandomForestRegressor(n_estimators=100, random_state=0).fit(features, target)
    mlflow.sklearn.save_model(
        model,
        str(path),
        signature=infer_signature(features, model.predict(features)),
        skops_trusted_types=["sklearn.tree._tree.Tree"],
    )
    for item in [path, *path.rglob("*")]:  # readable by the image's non-root user
        item.chmod(0o755 if item.is_dir() else 0o644)
    return features.iloc[[0]].to_json(orient="split")


def port_of(name: str, port: int) -> int:
    return int(docker("port", name, f"{port}/tcp").splitlines()[0].rsplit(":", 1)[1])


Run = tuple[float, float, float, int]  # requests/s, p50 ms, p99 ms, non-2xx answers


def wrk(url: str, body: str, seconds: int, work: Path) -> Run:
    """requests/s, p50 and p99 in ms, non-2xx answers."""
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=body))
    command = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
    out = subprocess.run(
        [*command, f"{url}/invocations"], capture_output=True, text=True, timeout=seconds + 60
    ).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    count, micros, p50, p99, errors = map(int, line.split()[1:])
    return count / (micros / 1e6), p50 / 1000, p99 / 1000, errors


def metric(url: str, name: str, *labels: str) -> float:
    """The sum of a metric's samples whose labels include every one of `labels`."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    found = re.findall(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M)
    return sum(float(value) for tags, value in found if all(label in tags for label in labels))


def run(args: argparse.Namespace, work: Path) -> bool:
    body = make_model(work / "model")
    network = f"mlstack-capture-bench-{uuid.uuid4().hex[:6]}"
    docker("network", "create", network)
    names: list[str] = []
    try:
        minio = f"{network}-minio"
        names.append(minio)
        secret = uuid.uuid4().hex
        docker(
            "run", "-d", "--name", minio, "--network", network, "--network-alias", "minio",
            "-p", "127.0.0.1::9000", "-e", "MINIO_ROOT_USER=bench", "-e",
            f"MINIO_ROOT_PASSWORD={secret}", minio_image(), "server", "/data",
        )  # fmt: skip
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port_of(minio, 9000)}",
            aws_access_key_id="bench",
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )
        poll(lambda: s3.create_bucket(Bucket="capture"), 60, 1, ignore=(Exception,))
        urls = {}
        for label, env in CONFIGS.items():
            name = f"{network}-{label}"
            names.append(name)
            capture = {
                "INFERENCE_CAPTURE_DESTINATION": "s3://capture/bench",
                "AWS_ENDPOINT_URL_S3": "http://minio:9000",
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": secret,
            }
            variables = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", **env}
            if label == "capture":
                variables.update(capture)
            flags = [f"-e{k}={v}" for k, v in variables.items()]
            docker(
                "run", "-d", "--name", name, "--network", network, "-v",
                f"{work / 'model'}:/opt/ml/model:ro", "-p", "127.0.0.1::8080", "-p",
                "127.0.0.1::8082", *flags, args.image, "serve",
            )  # fmt: skip
            urls[label] = f"http://127.0.0.1:{port_of(name, 8080)}"
            until_ok(f"{urls[label]}/ping", 120, 0.5)
        results: dict[str, list[Run]] = {label: [] for label in CONFIGS}
        for label in CONFIGS:
            wrk(urls[label], body, args.warmup, work)
        for number in range(1, args.rounds + 1):
            for label in CONFIGS:
                results[label].append(wrk(urls[label], body, args.duration, work))
                rate, p50, p99, errors = results[label][-1]
                line = f"{rate:8.1f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  non-2xx {errors}"
                print(f"round {number} {label:8s} {line}", flush=True)
        metrics_url = f"http://127.0.0.1:{port_of(f'{network}-capture', 8082)}"
        answered = metric(
            metrics_url, "mlstack_inference_requests_total", 'path="/invocations"', 'status="200"'
        )

        def settled() -> bool | None:  # every answered request written or dropped
            done = metric(metrics_url, "mlstack_inference_capture_records_written_total")
            done += metric(metrics_url, "mlstack_inference_capture_records_dropped_total")
            return True if done >= answered else None

        try:
            poll(settled, 60, 1)
        except TimedOut:
            print("capture had not written every record 60 s after the load")
        written = metric(metrics_url, "mlstack_inference_capture_records_written_total")
        dropped = metric(metrics_url, "mlstack_inference_capture_records_dropped_total")
    finally:
        for name in names:
            subprocess.run(["docker", "rm", "-f", name], capture_output=True)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)
    return report(results, written, dropped, args)


def report(results, written: float, dropped: float, args: argparse.Namespace) -> bool:
    def medians(index: int) -> dict[str, float]:
        return {label: statistics.median(r[index] for r in runs) for label, runs in results.items()}

    median, p50, p99 = medians(0), medians(1), medians(2)
    errors = sum(r[3] for runs in results.values() for r in runs)
    print(f"\nmedian of {args.rounds} rounds of {args.duration} s, 2 workers, 8 connections:")
    for label in CONFIGS:
        ratio = median[label] / median["bare"]
        line = (
            f"{median[label]:8.1f} req/s ({ratio:6.1%} of bare)  "
            f"p50 {p50[label]:.2f} ms  p99 {p99[label]:.2f} ms"
        )
        print(f"  {label:8s} {line}")
    cost = 1 - median["capture"] / median["metrics"]
    print(f"capture at 100 % costs {cost:.1%} of requests/s (budget {BUDGET:.0%})")
    print(
        f"latency with capture / without: p50 {p50['capture'] / p50['metrics']:.2f}x, "
        f"p99 {p99['capture'] / p99['metrics']:.2f}x"
    )
    print(f"capture wrote {written:.0f} records, dropped {dropped:.0f}; non-2xx answers {errors}")
    return cost <= BUDGET and dropped == 0 and errors == 0


def in_process(calls: int = 20000) -> None:
    """Microseconds per call of the request path's parts and of the writer's encoding."""
    import time
    from types import SimpleNamespace

    from mlstack.serving import metrics
    from mlstack.serving.capture import Capture, CaptureConfig

    samples = metrics.prepare_directory()  # multiprocess mode, as in the image

    class NullStore:
        def put(self, key: str, body: bytes) -> None:
            pass

    served = metrics.Metrics()
    config = CaptureConfig("s3://b/p", "bench", buffer_bytes=1 << 30, file_seconds=3600)
    capture = Capture(config, store_factory=NullStore)
    headers = {"content-type": "application/json"}
    body = make_request_body().encode()
    answer = SimpleNamespace(
        status=200, content_type="application/json", body=b'{"predictions": [1.0]}'
    )

    def per_call(action) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            action()
        return (time.perf_counter() - started) / calls * 1e6

    answered = per_call(lambda: served.answered("/invocations", 200, time.perf_counter()))
    offered = per_call(lambda: capture.offer(headers, body, answer))
    started = time.perf_counter()
    counts = capture.close()
    encoded = (time.perf_counter() - started) / counts.written * 1e6
    print(f"per request: Capture.offer {offered:.1f} us, metrics {answered:.1f} us")
    print(f"writer thread, off the request path: {encoded:.1f} us per record ({counts.describe()})")
    shutil.rmtree(samples, ignore_errors=True)


def make_request_body() -> str:
    """The benchmark's one-row request, without training the model."""
    from sklearn.datasets import load_diabetes

    features, _ = load_diabetes(return_X_y=True, as_frame=True)
    return features.iloc[[0]].to_json(orient="split")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=f"mlstack/inference:{version()}")
    parser.add_argument("--duration", type=int, default=15, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds before the rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-process", action="store_true", help="per-call costs, no Docker")
    args = parser.parse_args(argv)
    if args.in_process:
        in_process()
        return 0
    with tempfile.TemporaryDirectory(prefix="mlstack-capture-bench-") as tmp:
        return 0 if run(args, Path(tmp)) else 1


if __name__ == "__main__":
    sys.exit(main())
