"""The ASGI app that gunicorn's uvicorn workers serve: MLflow's full FastAPI app.

MLflow's own `--gunicorn-opts` serves only the Flask part, losing the native
FastAPI routes (streamed artifact transfer among them); this serves it all.
"""

from __future__ import annotations

from typing import Any

from mlflow.server import handlers, server_info_api
from mlflow.utils.server_info import (
    SERVER_INFO_MULTIPART_DOWNLOADS_ENABLED,
    SERVER_INFO_MULTIPART_UPLOADS_ENABLED,
)

from mlstack.tracking.artifacts import bound_s3_clients
from mlstack.tracking.config import load_settings
from mlstack.tracking.missing_artifacts import answer_missing_artifacts_with_404
from mlstack.tracking.readiness import Readiness

_build_server_info_payload = server_info_api.build_server_info_payload


def _server_info_without_presigned_urls() -> dict[str, Any]:
    """MLflow's server-info, advertising no presigned (multipart) transfers.

    A client that sees them advertised downloads from URLs signed for the
    server's own S3 endpoint (http://minio:9000 in the local stack), which it
    cannot reach; it then retries for minutes. Without them every transfer is
    proxied through /api/2.0/mlflow-artifacts, which any client reaches.
    """
    payload = _build_server_info_payload()
    payload[SERVER_INFO_MULTIPART_DOWNLOADS_ENABLED] = False
    payload[SERVER_INFO_MULTIPART_UPLOADS_ENABLED] = False
    return payload


def open_backend_stores() -> None:
    """Open this worker's tracking and model-registry stores now, before it serves.

    MLflow opens them on a worker's first request, and opening retries the engine for
    minutes (create_sqlalchemy_engine_with_retry: 10 attempts, 100 s of back-off); `mlflow
    server` opens them only in its own process, before its workers fork. So a worker's
    first request during a database outage waited minutes instead of failing within
    DB_READ_TIMEOUT. Opened here, a worker that starts during an outage waits instead,
    before it accepts a connection, while the others answer.
    """
    handlers.initialize_backend_stores()


def create_app() -> Any:
    """Build the app for one worker: basic-auth when enabled, else the plain server.

    Basic-auth verifies each password once per worker and lifetime, answers refused logins
    late (credentials.py, failed_logins.py), with the deployment's login hint (login_hint.py).
    Either way behind /ready, with its stores open and bounded waits on the object store.
    """
    settings = load_settings()
    bounds = settings.bounds
    bound_s3_clients(bounds.s3_connect_timeout, bounds.s3_read_timeout, bounds.s3_max_attempts)
    answer_missing_artifacts_with_404()
    open_backend_stores()
    if not settings.presigned_artifact_urls:
        server_info_api.build_server_info_payload = _server_info_without_presigned_urls
    if settings.auth is not None:
        from mlflow.server.auth import create_app as create_auth_app

        from mlstack.tracking.credentials import remember_verified_passwords
        from mlstack.tracking.failed_logins import FailedLoginDelay
        from mlstack.tracking.login_hint import LoginHint

        remember_verified_passwords()  # before MLflow builds its app and opens the store
        auth_app = FailedLoginDelay(create_auth_app())
        hinted = LoginHint(auth_app, settings.auth_login_hint)
        return Readiness(hinted, settings.backend_store_uri)
    from mlflow.server.fastapi_app import app

    return Readiness(app, settings.backend_store_uri)
