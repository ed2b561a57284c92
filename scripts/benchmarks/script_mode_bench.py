#!/usr/bin/env python3
"""Start-up of a script-mode training job against the built-in job, side by side.

Three kinds of job run in the training image, alternating, ROUNDS times each, on the same
channels (scikit-learn's diabetes data) and without a tracking server, so only the image's
own start-up is measured:

- built-in: no sagemaker_program, the image's RandomForest;
- script:   examples/gradient_boosting/train.py with no requirements.txt;
- script + requirements.txt: the same with its requirements.txt (an MLflow 2.x client,
  installed by pip from the package index at every job start, as SageMaker does).

With --baseline-image, the built-in job of that image (another build, e.g. the previous
release) runs in each round too, so a change's effect on it is measured side by side.

For each it takes the time from `docker run` to the job's first log line, to the script's
first line (`train.py: started`; for the built-in job, its `training RandomForestRegressor`
line, when it starts fitting), and to the container's exit, and prints medians and their
ratios to the built-in job, with each job's exit code.

    .venv/bin/python scripts/benchmarks/script_mode_bench.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlstack import ROOT, version
from mlstack.cli import data as prepare_data
from mlstack.cli.local import jobs as local_jobs

EXAMPLE = ROOT / "examples" / "gradient_boosting"
MARKER = b"train.py: started"
BUILTIN_MARKER = b"training RandomForestRegressor"
KINDS = ("built-in", "script", "script + requirements.txt")
BASELINE = "built-in (baseline image)"


def job_dir(base: Path, kind: str, data: Path, round_: int) -> Path:
    """A fresh /opt/ml for one job of the given kind."""
    name = "".join(c for c in kind.replace("+", "-") if c.isalnum() or c == "-")
    directory = base / f"{name}-{round_}"
    spec = json.loads((data / "hyperparameters.json").read_text())
    hps = {**spec, "n-estimators": "100"}
    script = None
    if not kind.startswith("built-in"):
        source = base / f"src-{kind.replace(' ', '')}"
        if not source.exists():
            shutil.copytree(EXAMPLE, source)
            if kind == "script":
                (source / "requirements.txt").unlink()
        script = local_jobs.Script(source, "train.py")
        hps.update(script.hyperparameters(directory.name))
    local_jobs.write_job_dir(directory, data, hps, script)
    return directory


def time_job(image: str, directory: Path, marker: bytes) -> dict[str, float]:
    """Seconds from `docker run` to the first line, the script's first line, and the exit."""
    started = time.monotonic()
    process = subprocess.Popen(
        ["docker", "run", "--rm", "-v", f"{directory}:/opt/ml", image, "train"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    first = script = None
    for line in iter(process.stdout.readline, b""):
        now = time.monotonic() - started
        first = first if first is not None else now
        if script is None and marker in line:
            script = now
    code = process.wait()
    total = time.monotonic() - started
    if script is None:
        raise SystemExit(f"script_mode_bench: error: no script line from the job in {directory}")
    return {"first_line": first or total, "script_line": script, "exit": total, "code": code}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=f"mlstack/training:{version()}")
    parser.add_argument("--baseline-image", help="also time this image's built-in job")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS[1:]),
        help="comma-separated jobs of --image to time besides its built-in one, the reference "
        f"(default: {','.join(KINDS[1:])}; empty: the built-in jobs alone)",
    )
    args = parser.parse_args(argv)
    chosen = {kind.strip() for kind in args.kinds.split(",") if kind.strip()} | {"built-in"}
    if unknown := sorted(chosen - set(KINDS)):
        parser.error(f"--kinds: unknown {', '.join(unknown)}: choose among {', '.join(KINDS)}")
    kinds = {kind: args.image for kind in KINDS if kind in chosen}
    if args.baseline_image:
        kinds[BASELINE] = args.baseline_image
    with tempfile.TemporaryDirectory(prefix="script-mode-bench-") as tmp:
        base = Path(tmp)
        data = base / "data"
        prepare_data.prepare(data, dataset="diabetes")
        results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for round_ in range(args.rounds):
            for kind, image in kinds.items():
                marker = BUILTIN_MARKER if kind.startswith("built-in") else MARKER
                timing = time_job(image, job_dir(base, kind, data, round_), marker)
                results[kind].append(timing)
                print(f"round {round_ + 1} {kind:26s} {json.dumps(timing)}", file=sys.stderr)
    medians = {
        kind: {key: statistics.median(t[key] for t in timings) for key in timings[0]}
        for kind, timings in results.items()
    }
    built_in = medians["built-in"]
    print(
        f"{'job':26s} {'first line':>11s} {'script line':>12s} {'ratio':>7s} {'exit':>8s}"
        f" {'ratio':>7s} codes"
    )
    for kind, m in medians.items():
        codes = ",".join(str(int(t["code"])) for t in results[kind])
        print(
            f"{kind:26s} {m['first_line']:10.2f}s {m['script_line']:11.2f}s"
            f" {m['script_line'] / built_in['script_line']:6.2f}x {m['exit']:7.2f}s"
            f" {m['exit'] / built_in['exit']:6.2f}x {codes}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
