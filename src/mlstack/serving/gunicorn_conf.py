"""gunicorn settings from SageMaker's variables (the entrypoint has checked them).

SAGEMAKER_BIND_TO_PORT (default 8080), SAGEMAKER_MODEL_SERVER_WORKERS (default:
one per CPU) and SAGEMAKER_MODEL_SERVER_TIMEOUT (default 60 s) are the hosting
contract's knobs. gunicorn also reads GUNICORN_CMD_ARGS for anything else.
"""

import multiprocessing

from mlstack.serving import metrics
from mlstack.serving.config import load_settings

_settings = load_settings()
# Before any worker imports prometheus_client (metrics.py says why).
metrics.prepare_directory()

# Made in the master, inherited by every forked worker: how many have loaded the
# model. /ping answers 200 only when all have (mlstack.serving.lifecycle.Readiness).
# gunicorn ignores names that are not its settings.
loaded_workers = multiprocessing.Value("i", 0)

bind = [f"0.0.0.0:{_settings.port}"]
workers = _settings.workers
# Each worker runs an event loop (uvicorn) that reads requests and answers /ping,
# and one prediction thread (app.py says why). gthread workers, used before, read
# each request in a pool thread: a client sending its body slowly held that thread,
# and /ping queued behind predictions and uploads alike.
worker_class = "mlstack.serving.worker.InferenceWorker"
# A worker whose event loop is silent longer than this is restarted; SageMaker gives
# /invocations 60 s by default. (One invocation's budget: lifecycle.Watchdog.)
timeout = _settings.timeout
# SageMaker sends SIGTERM, then SIGKILL 30 s later: finish in-flight requests first.
graceful_timeout = 25
# Idle connections stay open this long (SageMaker reuses them).
keepalive = 60
loglevel = _settings.log_level
accesslog = None
errorlog = "-"
# Heartbeat files in memory, not on the container's overlay filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - gunicorn creates its own files there
# No control socket: nothing administers the server from inside the container.
control_socket_disable = True


# gunicorn's hooks, in the master: the metrics port, and a dead worker's gauges forgotten.
# (A stopping worker writes its data capture at ASGI lifespan shutdown: worker.py.)
def when_ready(server) -> None:
    if _settings.metrics_port:
        metrics.serve(_settings.metrics_port)


def child_exit(server, worker) -> None:
    metrics.worker_gone(worker.pid)
