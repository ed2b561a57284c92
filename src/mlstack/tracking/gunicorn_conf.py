"""Fixed gunicorn settings; bind, workers, log level, keep-alive and the proxies whose
forwarded headers are trusted come from the entrypoint (docs/configuration.md).

uvicorn workers serve MLflow's ASGI app (see app.py). gunicorn also reads
GUNICORN_CMD_ARGS, for anything an operator wants to change beyond these.
"""

import os

worker_class = "uvicorn_worker.UvicornWorker"
accesslog = "-"
errorlog = "-"
# A worker silent longer than this (stuck, not merely busy: uvicorn workers
# heartbeat while requests run) is restarted.
timeout = 120
graceful_timeout = 30
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 20000
max_requests_jitter = 2000


def child_exit(server, worker) -> None:
    """MLFLOW_EXPOSE_PROMETHEUS: a dead worker's live gauges leave /metrics (prometheus_flask_
    exporter's documented gunicorn hook)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

        GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
