"""Native thread pools sized per worker: OpenMP, BLAS and joblib share the CPUs the server has.

Every gunicorn worker loads its own copy of the model. Left alone, each copy's OpenMP and
BLAS pools start one thread per core of the machine, so N workers run N x cores threads on
the cores there are, and the threads spin-wait for each other: a HistGradientBoosting model
answered one-row requests 4x slower than one thread per worker. The entrypoint therefore
sets the libraries' variables before any worker starts (OpenMP and OpenBLAS read them once,
when they load), from the CPUs this container may use (its affinity and its cgroup CPU
quota) divided among the workers, or from INFERENCE_MODEL_THREADS, the one setting (an
OMP_NUM_THREADS of the user's is replaced, and the log says so); each worker applies the
same limit with threadpoolctl once the model is loaded, for libraries that ignore them.
"""

from __future__ import annotations

import math
import os
from collections.abc import MutableMapping
from pathlib import Path

# Read by the native libraries themselves: OpenMP (scikit-learn's HistGradientBoosting, its
# k-means, LightGBM, XGBoost), the BLAS builds numpy and scipy ship, numexpr; joblib's
# cpu_count() (n_jobs=-1) honours LOKY_MAX_CPU_COUNT.
POOL_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "LOKY_MAX_CPU_COUNT",
)
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPUs the cgroup's quota allows (docker run --cpus), or None without a quota."""
    try:  # cgroup v2: "max 100000" or "150000 100000"
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """The CPUs this process may use: its affinity, capped by the cgroup's quota (rounded up)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def threads_per_worker(workers: int, setting: int | None, cpus: int) -> int:
    """INFERENCE_MODEL_THREADS if set, else the CPUs shared among the workers (at least 1)."""
    if setting is not None:
        return setting
    return max(1, cpus // max(1, workers))


def configure(
    workers: int, setting: int | None, environ: MutableMapping[str, str] | None = None
) -> str:
    """Set the pool variables in `environ` (os.environ) before the workers start; one line
    saying what was chosen and why, for the start-up log."""
    environ = os.environ if environ is None else environ
    cpus = available_cpus()
    threads = threads_per_worker(workers, setting, cpus)
    replaced = [
        f"{name}={environ[name]}"
        for name in POOL_VARIABLES
        if environ.get(name, "").strip() not in ("", str(threads))
    ]
    environ.update({name: str(threads) for name in POOL_VARIABLES})
    source = (
        f"INFERENCE_MODEL_THREADS={setting}"
        if setting is not None
        else f"{cpus} CPUs available / {workers} workers; INFERENCE_MODEL_THREADS overrides"
    )
    note = f"; replaced {', '.join(replaced)}" if replaced else ""
    return f"model thread pools: {threads} thread(s) per worker ({source}){note}"


def limit_loaded_pools(threads: int) -> str:
    """Limit every native pool loaded so far to `threads` (threadpoolctl), for libraries
    loaded before the variables applied or that ignore them; 'openmp 1, openblas 1'."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads)
    seen: dict[str, int] = {}
    for pool in threadpool_info():
        api = str(pool.get("internal_api") or pool.get("user_api") or "unknown")
        seen[api] = max(seen.get(api, 0), int(pool.get("num_threads", 0)))
    return ", ".join(f"{api} {count}" for api, count in sorted(seen.items())) or "none loaded"
