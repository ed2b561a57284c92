"""Native thread pools sized per worker (threads.py): the CPUs found, the variables set, and a
HistGradientBoosting model in two worker-like processes not slower than with stock settings."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlstack.serving import threads

from .models import Diabetes


def test_cgroup_quota_v2_and_v1(tmp_path: Path) -> None:
    assert threads.cgroup_cpu_limit(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpu_limit(tmp_path) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpu_limit(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert threads.cgroup_cpu_limit(v1) == 0.5


def test_available_cpus_are_capped_by_the_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    assert threads.available_cpus(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # docker run --cpus 0.5
    assert threads.available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{100000 * (affinity + 3)} 100000\n")
    assert threads.available_cpus(tmp_path) == affinity


@pytest.mark.parametrize(
    ("workers", "setting", "cpus", "expected"),
    [(2, None, 2, 1), (1, None, 4, 4), (3, None, 8, 2), (4, None, 2, 1), (2, 3, 2, 3)],
)
def test_threads_per_worker(workers: int, setting: int | None, cpus: int, expected: int) -> None:
    assert threads.threads_per_worker(workers, setting, cpus) == expected


def test_configure_sets_every_pool_and_says_what_it_replaced() -> None:
    environ = {"OMP_NUM_THREADS": "8", "OPENBLAS_NUM_THREADS": "1"}
    line = threads.configure(workers=1, setting=1, environ=environ)
    assert {name: environ[name] for name in threads.POOL_VARIABLES} == dict.fromkeys(
        threads.POOL_VARIABLES, "1"
    )
    assert line.startswith("model thread pools: 1 thread(s) per worker (INFERENCE_MODEL_THREADS=1)")
    assert line.endswith("replaced OMP_NUM_THREADS=8")
    cpus = threads.available_cpus()
    line = threads.configure(workers=1, setting=None, environ={})
    assert f"({cpus} CPUs available / 1 workers" in line


# --- a HistGradientBoosting model in two worker-like processes ------------------------------

PREDICT_LOOP = textwrap.dedent(
    """
    import json, pickle, sys, time
    from threadpoolctl import threadpool_info
    model, row = pickle.load(open(sys.argv[1], "rb"))
    model.predict(row)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < float(sys.argv[2]):
        model.predict(row)
        calls += 1
    openmp = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"]
    print(json.dumps({"per_s": calls / (time.perf_counter() - start), "openmp": openmp}))
    """
)


def two_workers(model_file: Path, environ: dict[str, str], seconds: float) -> list[dict]:
    """Two processes predicting one row at a time for `seconds`, at once, as two gunicorn
    workers do under load: each one's predictions per second and OpenMP threads."""
    command = [sys.executable, "-c", PREDICT_LOOP, str(model_file), str(seconds)]
    running = [
        subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    return [json.loads(process.communicate(timeout=120)[0]) for process in running]


def test_hist_gradient_boosting_is_not_slower_than_with_stock_settings(
    diabetes_data: Diabetes, tmp_path: Path
) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    model = HistGradientBoostingRegressor(max_iter=50, random_state=0)
    with threadpool_limits(1):  # fitted quickly, whatever the machine
        model.fit(diabetes_data.train.to_numpy(), diabetes_data.y_train)
    model_file = tmp_path / "model.pkl"  # numpy rows: the processes need not import pandas
    model_file.write_bytes(pickle.dumps((model, diabetes_data.test.to_numpy()[:1])))
    stock = {k: v for k, v in os.environ.items() if k not in threads.POOL_VARIABLES}
    ours = dict(stock)
    threads.configure(workers=2, setting=None, environ=ours)
    expected = threads.threads_per_worker(2, None, threads.available_cpus())
    ours_runs = two_workers(model_file, ours, 0.5)
    stock_runs = two_workers(model_file, stock, 0.5)
    assert all(run["openmp"] and set(run["openmp"]) == {expected} for run in ours_runs)
    ours_rate = sum(run["per_s"] for run in ours_runs)
    stock_rate = sum(run["per_s"] for run in stock_runs)
    # Equal when one thread is all there is; far faster when stock oversubscribes the CPUs.
    assert ours_rate >= stock_rate / 1.5, (ours_rate, stock_rate)
