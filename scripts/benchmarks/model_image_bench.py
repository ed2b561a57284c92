#!/usr/bin/env python3
"""A model image next to the plain inference image: image size and start-up time.

Both serve the same MLflow model folder: the plain image with it mounted at /opt/ml/model
(INFERENCE_ENV_POLICY=warn, so a model saved with other versions is served as it is), the
model image (`make build-model-image`) with it built in and its own venv. Start-up is
`docker run` to the first 200 from /ping, measured alternately, ROUNDS times each, on
127.0.0.1 only; each container is removed after its round. Prints sizes, median start-up
times and the ratios (this machine is noisy: compare the ratio, not the seconds).

    .venv/bin/python scripts/benchmarks/model_image_bench.py \\
        --model-dir path/to/model --model-image mlstack/model-NAME:VERSION --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

from mlstack import version
from mlstack.core.waiting import TimedOut, until_ok

DEFAULT_IMAGE = f"mlstack/inference:{version()}"


def image_size(image: str) -> int:
    """Bytes, as `docker image inspect` reports the image's size."""
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Size}}", image],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def start_up(image: str, args: list[str], timeout: float = 120) -> float:
    """Seconds from `docker run` to the first 200 from /ping; the container is removed."""
    started = time.monotonic()
    container = subprocess.run(
        ["docker", "run", "--detach", "--publish", "127.0.0.1::8080", *args, image, "serve"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        port = (
            subprocess.run(
                ["docker", "port", container, "8080"], capture_output=True, text=True, check=True
            )
            .stdout.split(":")[-1]
            .strip()
        )

        remaining = max(0.0, timeout - (time.monotonic() - started))
        try:
            until_ok(f"http://127.0.0.1:{port}/ping", remaining, 0.1)
            return time.monotonic() - started
        except TimedOut:
            raise SystemExit(f"{image} did not answer /ping within {timeout} s") from None
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--model-image", required=True)
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the plain inference image")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    plain_args = [
        "--env", "INFERENCE_ENV_POLICY=warn",
        "--volume", f"{args.model_dir.resolve()}:/opt/ml/model:ro",
    ]  # fmt: skip
    times: dict[str, list[float]] = {args.image: [], args.model_image: []}
    for _ in range(args.rounds):  # alternate, so both see the same noise
        times[args.image].append(start_up(args.image, plain_args))
        times[args.model_image].append(start_up(args.model_image, []))
    plain, model = args.image, args.model_image
    result = {
        name: {
            "size_mb": round(image_size(name) / 1e6),
            "start_up_median_s": round(statistics.median(seconds), 2),
            "start_up_s": [round(s, 2) for s in seconds],
        }
        for name, seconds in times.items()
    }
    result["ratios"] = {
        "size": round(result[model]["size_mb"] / result[plain]["size_mb"], 2),
        "start_up": round(
            result[model]["start_up_median_s"] / result[plain]["start_up_median_s"], 2
        ),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
