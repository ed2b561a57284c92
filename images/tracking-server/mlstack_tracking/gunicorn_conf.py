"""Fixed gunicorn settings; bind, workers and log level come from the entrypoint.

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
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 20000
max_requests_jitter = 2000
forwarded_allow_ips = "*"
