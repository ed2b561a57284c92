"""Tracking-server throughput: stock `mlflow server` beside ours, same database, same load.

Needs the local stack (`make local-up`). Starts stock `mlflow server` (its
defaults: uvicorn, 4 workers) from our image on the stack's network, against the
same MySQL and MinIO, on a free port of 127.0.0.1; then drives each server in
turn with the same load and prints runs/s and the ratio. Every container it
starts is removed at the end.

One "run" = create_run + log_batch(100 metrics, 1 param) + set_terminated.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import docker
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from mlstack import ROOT, version
from mlstack.cli.settings import LocalSettings, export_for_libraries, load
from mlstack.core.ports import free_port
from mlstack.core.waiting import TimedOut, until_ok


def wait_healthy(url: str, timeout: float = 120) -> None:
    """Until url/health answers."""
    try:
        until_ok(f"{url}/health", timeout, 1)
    except TimedOut:
        raise SystemExit(
            f"tracking_bench: error: {url} did not become healthy in {timeout:.0f} s"
        ) from None


def start_stock_server(settings: LocalSettings, port: int):
    """Stock `mlflow server` with its defaults, from our image (same mlflow, same drivers)."""
    password = settings.require("db_password")
    backend = f"mysql+pymysql://{settings.db_user}:{password}@mysql:3306/{settings.db_name}"
    client = docker.from_env()
    return client.containers.run(
        f"mlstack/tracking-server:{version()}",
        entrypoint=["mlflow", "server"],
        command=[
            "--host",
            "0.0.0.0",
            "--port",
            "5000",
            "--backend-store-uri",
            backend,
            "--artifacts-destination",
            settings.artifacts_destination,
            "--serve-artifacts",
        ],
        environment={
            "AWS_ACCESS_KEY_ID": settings.minio_mlflow_user,
            "AWS_SECRET_ACCESS_KEY": settings.require("minio_mlflow_password"),
            "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
        },
        network=settings.network,
        ports={"5000/tcp": ("127.0.0.1", port)},
        detach=True,
        remove=False,
    )


def drive(url: str, threads: int, seconds: float, experiment: str) -> float:
    """Runs per second that `threads` clients achieve against url for `seconds`."""
    client = MlflowClient(tracking_uri=url)
    experiment_id = client.create_experiment(f"{experiment}-{time.time_ns()}")
    metrics = [Metric(f"m{i}", float(i), 0, 0) for i in range(100)]
    done = [0] * threads
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        own = MlflowClient(tracking_uri=url)
        while time.monotonic() < stop_at:
            run = own.create_run(experiment_id)
            now = int(time.time() * 1000)
            own.log_batch(
                run.info.run_id,
                metrics=[Metric(m.key, m.value, now, 0) for m in metrics],
                params=[Param("p", "v")],
            )
            own.set_terminated(run.info.run_id)
            done[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def main() -> None:
    """Measure both servers and print a small table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server")
    parser.add_argument("--ours", default=None, help="our server's URL (default: the stack's)")
    args = parser.parse_args()
    settings = load(LocalSettings, ROOT / ".env")
    ours = args.ours or settings.tracking_uri
    wait_healthy(ours)
    port = free_port()
    stock_container = start_stock_server(settings, port)
    try:
        stock = f"http://127.0.0.1:{port}"
        wait_healthy(stock)
        # The stack's access control (on unless .env says false): log in as its admin;
        # the stock server, without auth, ignores the header.
        export_for_libraries({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **settings.admin_login()})
        servers = {"stock mlflow server": stock, "mlstack tracking-server": ours}
        rounds: dict[str, list[float]] = {name: [] for name in servers}
        for url in servers.values():
            drive(url, args.threads, 3, "bench-warmup")
        # Alternate, so a noisy neighbour weighs on both alike.
        for _ in range(args.rounds):
            for name, url in servers.items():
                rounds[name].append(drive(url, args.threads, args.seconds, "bench"))
        results = {name: statistics.median(values) for name, values in rounds.items()}
        for name, value in results.items():
            each = ", ".join(f"{v:.1f}" for v in rounds[name])
            print(f"{name:26s} {value:7.1f} runs/s (median of {each})")
        ratio = results["mlstack tracking-server"] / results["stock mlflow server"]
        print(f"{'ratio (ours / stock)':26s} {ratio:7.2f}")
    finally:
        stock_container.remove(force=True)


if __name__ == "__main__":
    main()
