"""gunicorn settings from SageMaker's variables (the entrypoint has checked them).

SAGEMAKER_BIND_TO_PORT (default 8080), SAGEMAKER_MODEL_SERVER_WORKERS (default:
one per CPU) and SAGEMAKER_MODEL_SERVER_TIMEOUT (default 60 s) are the hosting
contract's knobs. gunicorn also reads GUNICORN_CMD_ARGS for anything else.
"""

import multiprocessing

from mlstack_inference.config import load_settings

_settings = load_settings()

# Made in the master, inherited by every forked worker: how many have loaded the
# model. /ping answers 200 only when all have (mlstack_inference.lifecycle.Readiness).
# gunicorn ignores names that are not its settings.
loaded_workers = multiprocessing.Value("i", 0)

bind = [f"0.0.0.0:{_settings.port}"]
workers = _settings.workers
# Threaded workers keep connections alive (SageMaker reuses them). One thread per
# worker: the work is CPU-bound under the GIL, and more threads only queue requests
# behind each other (measured on 2 cores: p99 10 ms with 1 thread, 20 ms with 2,
# 650 ms with 4; sync workers, which close every connection: p99 21 ms).
worker_class = "gthread"
threads = 1
# A worker silent longer than this is restarted; SageMaker gives /invocations 60 s
# by default. (A single invocation's budget is enforced by lifecycle.Watchdog.)
timeout = _settings.timeout
# SageMaker sends SIGTERM, then SIGKILL 30 s later: finish in-flight requests first.
graceful_timeout = 25
keepalive = 60
loglevel = _settings.log_level
accesslog = None
errorlog = "-"
# Heartbeat files in memory, not on the container's overlay filesystem.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - gunicorn creates its own files there
# No control socket: nothing administers the server from inside the container.
control_socket_disable = True
