"""A large artifact through the tracking server's proxy against straight to the object store,
side by side in one run.

Needs the local stack up (`make local-up`). A client container (the tracking-server image:
MLflow's client and boto3) on the stack's network writes a file of `--mib` random bytes,
then, alternating in each round:

- through the proxy: MLflow's client logs it as an artifact of a scratch run and downloads it
  again (http://tracking-server:5000, logged in as the stack's admin when auth is on);
- straight to MinIO: boto3 uploads it to the bucket and downloads it again
  (http://minio:9000, with the tracking server's own bucket credentials);

both paths container to container, so the ratio is the proxy's own cost. Every download is
checked against the file's SHA-256. Meanwhile the tracking server's memory is sampled
(docker stats, about once a second). Prints the medians in MiB/s, the ratios proxy/direct and
the server's memory; removes the scratch run, its artifact and the direct copy afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker

from mlstack import ROOT, version
from mlstack.cli.settings import LocalSettings, load

# Runs inside the client container: size, rounds and the artifacts' destination as its
# arguments; MLflow's client and boto3 read their settings (and the logins) from the
# container's environment themselves.
CLIENT_PROGRAM = r"""
import hashlib, json, os, sys, time, uuid
import boto3
from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

size, rounds = int(sys.argv[1]), int(sys.argv[2])
bucket, prefix = sys.argv[3].removeprefix("s3://").split("/", 1)
path = "/tmp/big.bin"
digest = hashlib.sha256()
with open(path, "wb") as handle:
    left = size
    while left:
        chunk = os.urandom(min(left, 8 << 20))
        digest.update(chunk)
        handle.write(chunk)
        left -= len(chunk)
expected = digest.hexdigest()

def sha256(name):
    found = hashlib.sha256()
    with open(name, "rb") as handle:
        while chunk := handle.read(8 << 20):
            found.update(chunk)
    return found.hexdigest()

def timed(call):
    started = time.monotonic()
    call()
    return time.monotonic() - started

client = MlflowClient()
experiment = client.create_experiment(f"artifact-bench-{uuid.uuid4().hex[:8]}")
run_id = client.create_run(experiment).info.run_id
s3 = boto3.client("s3", endpoint_url="http://minio:9000")
key = f"{prefix.rstrip('/')}/artifact-bench-{uuid.uuid4().hex[:8]}.bin"
seconds = {"proxy_up": [], "proxy_down": [], "direct_up": [], "direct_down": []}
try:
    for index in range(rounds):
        seconds["proxy_up"].append(timed(lambda: client.log_artifact(run_id, path, "bench")))
        down = f"/tmp/down-{index}"
        seconds["proxy_down"].append(
            timed(lambda: client.download_artifacts(run_id, "bench/big.bin", down))
        )
        assert sha256(f"{down}/big.bin") == expected, "the proxy's download differs"
        os.remove(f"{down}/big.bin")
        seconds["direct_up"].append(timed(lambda: s3.upload_file(path, bucket, key)))
        seconds["direct_down"].append(timed(lambda: s3.download_file(bucket, key, "/tmp/direct")))
        assert sha256("/tmp/direct") == expected, "the direct download differs"
        os.remove("/tmp/direct")
finally:
    s3.delete_object(Bucket=bucket, Key=key)
    artifacts = get_artifact_repository(client.get_run(run_id).info.artifact_uri)
    artifacts.delete_artifacts("bench")  # through the server's proxy
    client.delete_run(run_id)
    client.delete_experiment(experiment)
print("SECONDS " + json.dumps(seconds))
"""


def fail(message: str) -> SystemExit:
    return SystemExit(f"artifact_bench: error: {message}")


def stack_container(settings: LocalSettings, service: str):
    """One of the stack's running containers."""
    labels = [
        f"com.docker.compose.project={settings.compose_project}",
        f"com.docker.compose.service={service}",
    ]
    found = docker.from_env().containers.list(filters={"label": labels})
    if not found:
        raise fail(f"the stack's {service} is not running: make local-up")
    return found[0]


def resident_bytes(stats: dict) -> int:
    """The container's own (anonymous) memory in one docker stats sample, page cache apart:
    a streamed file fills the cache, which the kernel gives back on demand."""
    detail = stats.get("memory_stats", {}).get("stats", {})
    for key in ("total_rss", "rss", "anon"):  # cgroup v1, then v2
        if key in detail:
            return int(detail[key])
    return int(stats.get("memory_stats", {}).get("usage", 0))


@contextmanager
def memory_samples(container) -> Iterator[list[int]]:
    """The container's resident memory, sampled in a thread while the block runs."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        for stats in container.stats(stream=True, decode=True):
            if stats.get("memory_stats"):
                samples.append(resident_bytes(stats))
            if stop.is_set():
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=10)


def run_client(settings: LocalSettings, mib: int, rounds: int) -> dict[str, list[float]]:
    """The client program in a container on the stack's network; its seconds per transfer."""
    environment = {
        "MLFLOW_TRACKING_URI": "http://tracking-server:5000",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "600",
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "AWS_ACCESS_KEY_ID": settings.minio_mlflow_user,
        "AWS_SECRET_ACCESS_KEY": settings.require("minio_mlflow_password"),
        "AWS_DEFAULT_REGION": "us-east-1",
        **settings.admin_login(),
    }
    container = docker.from_env().containers.run(
        f"mlstack/tracking-server:{version()}",
        entrypoint=["python", "-c", CLIENT_PROGRAM],
        command=[str(mib << 20), str(rounds), settings.artifacts_destination],
        environment=environment,
        network=settings.network,
        detach=True,
    )
    try:
        status = container.wait()["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    if status != 0 or "SECONDS " not in output:
        raise fail(f"the client failed ({status}): {output[-2000:]}")
    return json.loads(output.split("SECONDS ", 1)[1].splitlines()[0])


def main() -> None:
    """Measure, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="artifact size in MiB")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    args = parser.parse_args()
    settings = load(LocalSettings, args.env_file)
    server = stack_container(settings, "tracking-server")
    with memory_samples(server) as samples:
        seconds = run_client(settings, args.mib, args.rounds)
    if not samples:
        raise fail("docker stats gave no memory sample of the tracking server")

    def rate(name: str) -> float:
        return args.mib / statistics.median(seconds[name])

    print(f"{args.mib} MiB, {args.rounds} rounds, medians (MiB/s):")
    for way in ("up", "down"):
        proxy, direct = rate(f"proxy_{way}"), rate(f"direct_{way}")
        print(
            f"  {way + 'load':9s} proxy {proxy:7.1f}   direct {direct:7.1f}"
            f"   proxy/direct {proxy / direct:5.2f}"
        )
    print(
        f"tracking server memory (RSS, page cache apart): {samples[0] >> 20} MiB at start, "
        f"peak {max(samples) >> 20} MiB ({len(samples)} samples)"
    )


if __name__ == "__main__":
    main()
