"""Prometheus metrics of the inference server, on a port of their own (INFERENCE_METRICS_PORT).

gunicorn's workers are separate processes, so the metrics use prometheus_client's
multiprocess mode: each worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR, which
the master makes empty before it forks (`prepare_directory`, from gunicorn_conf); the master
serves every worker's samples merged on the metrics port (`serve`, gunicorn's when_ready) and
drops a dead worker's live gauge (`worker_gone`, gunicorn's child_exit). prometheus_client
picks its multiprocess storage when it is first imported, so nothing imports it before
`prepare_directory` has set the variable: this module imports it inside functions.

    mlstack_inference_requests_total{path,status}          requests answered
    mlstack_inference_request_duration_seconds{path}       time to answer (histogram)
    mlstack_inference_model_load_seconds                   time the worker took to load the model
    mlstack_inference_capture_records_written_total        data capture records written
    mlstack_inference_capture_records_dropped_total{reason} dropped: queue_full, store_error
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("mlstack.serving")

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Answers take milliseconds on the fast path and up to the 60 s invocation budget.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Paths are labels: any other path counts as "other", so a scan cannot grow the series.
KNOWN_PATHS = frozenset({"/ping", "/invocations", "/execution-parameters", "/environment"})


def prepare_directory() -> str:
    """An empty directory for the workers' samples, in PROMETHEUS_MULTIPROC_DIR (in memory,
    /dev/shm, when there is one). Called by the master before the workers fork."""
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in Path(directory).glob("*.db"):  # an earlier server's samples, only
            stale.unlink()
    else:
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - memory, not disk
        directory = tempfile.mkdtemp(prefix="mlstack-metrics-", dir=base)
        os.environ[MULTIPROC_DIR] = directory
    return directory


def serve(port: int) -> None:
    """Serve every worker's samples, merged, on 0.0.0.0:port (a thread of the master)."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        start_http_server(port, registry=registry)
    except OSError as error:  # before any worker starts: the server stops with one line
        print(
            f"mlstack-inference: error: INFERENCE_METRICS_PORT={port}: {error.strerror}; "
            "choose a free port, or 0 for no metrics",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(1)
    log.info("Prometheus metrics on port %d (/metrics)", port)


def worker_gone(pid: int) -> None:
    """Forget a dead worker's live gauges (its counters keep counting in the totals)."""
    if os.environ.get(MULTIPROC_DIR):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class Metrics:
    """One worker's metrics; `registry` is for tests (None: the multiprocess files only)."""

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "mlstack_inference_requests",
            "Requests answered, by path and HTTP status",
            ["path", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mlstack_inference_request_duration_seconds",
            "Seconds from a request's arrival to its answer, by path",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_load = Gauge(
            "mlstack_inference_model_load_seconds",
            "Seconds a worker took to load the model (the slowest live worker)",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.capture_written = Counter(
            "mlstack_inference_capture_records_written",
            "Data capture records written to the store",
            registry=registry,
        )
        self.capture_dropped = Counter(
            "mlstack_inference_capture_records_dropped",
            "Data capture records dropped, by reason: queue_full or store_error",
            ["reason"],
            registry=registry,
        )

    def answered(self, path: str, status: int, started: float) -> None:
        """Count one answer and its latency (started: time.perf_counter() at arrival)."""
        label = path if path in KNOWN_PATHS else "other"
        self.requests.labels(label, str(status)).inc()
        self.latency.labels(label).observe(time.perf_counter() - started)

    def model_loaded(self, seconds: float) -> None:
        self.model_load.set(seconds)

    def capture(self, what: str, count: int) -> None:
        """Capture's counts: what is "written", "queue_full" or "store_error"."""
        if what == "written":
            self.capture_written.inc(count)
        else:
            self.capture_dropped.labels(what).inc(count)


class NoMetrics:
    """INFERENCE_METRICS_PORT=0: nothing recorded."""

    def answered(self, path: str, status: int, started: float) -> None:
        pass

    def model_loaded(self, seconds: float) -> None:
        pass

    def capture(self, what: str, count: int) -> None:
        pass


def for_port(port: int) -> Metrics | NoMetrics:
    """The worker's metrics: recorded when they are served (port not 0)."""
    return Metrics() if port else NoMetrics()
