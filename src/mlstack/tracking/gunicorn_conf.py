"""Fixed gunicorn settings; bind, workers, log level, keep-alive and the proxies whose
forwarded headers are trusted come from the entrypoint (docs/configuration.md).

uvicorn workers serve MLflow's ASGI app (see app.py). gunicorn also reads
GUNICORN_CMD_ARGS, for anything an operator wants to change beyond these.
"""

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
