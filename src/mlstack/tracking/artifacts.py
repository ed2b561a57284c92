"""Checking the artifact store before serving: a missing bucket is a start-up error."""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from mlstack.core.errors import StartupError
from mlstack.core.waiting import attempts

log = logging.getLogger(__name__)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def check_bucket(destination: str, endpoint_url: str | None, timeout: float) -> None:
    """Return once the destination's bucket answers; fail on a missing bucket or bad credentials.

    Connection errors are retried until `timeout` (the object store may still be starting).
    """
    bucket, _ = split_s3_uri(destination)
    where = endpoint_url or "AWS S3"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}),
    )
    try:
        for attempt in attempts(timeout, ClientError, BotoCoreError):
            with attempt:
                _head_bucket(client, bucket, where)
    except (ClientError, BotoCoreError) as error:
        raise StartupError(
            f"artifact store {where} did not answer within {timeout:.0f} s ({error}): "
            "check MLFLOW_S3_ENDPOINT_URL"
        ) from None
    log.info("artifact bucket %s at %s is reachable", bucket, where)


def _head_bucket(client: Any, bucket: str, where: str) -> None:
    """One HEAD of the bucket; StartupError for what waiting cannot fix, else boto's error."""
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError:
        raise StartupError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a task role"
        ) from None
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise StartupError(
                f"artifact bucket {bucket!r} does not exist at {where}: create it or fix "
                "ARTIFACTS_DESTINATION"
            ) from None
        if status in (401, 403):
            raise StartupError(
                f"access to artifact bucket {bucket!r} at {where} was denied: check the S3 "
                "credentials and their permissions"
            ) from None
        raise


def bound_s3_clients(connect_timeout: int, read_timeout: int, max_attempts: int) -> None:
    """Give every S3 client this process makes through boto3 these timeouts and retries.

    MLflow's S3 artifact repository builds its client with boto3.client() and a Config of
    its own that sets no timeouts (mlflow/store/artifact/s3_artifact_repo.py), so botocore's
    defaults apply: 60 s to connect, 60 s per read, 5 attempts, several minutes on a paused
    object store. botocore merges a session's default client config under the one a caller
    passes (botocore.session.Session.create_client), so MLflow's settings stay and these
    fill in what it leaves unset.
    """
    import botocore.session

    session = botocore.session.get_session()
    session.set_default_client_config(
        Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"mode": "standard", "total_max_attempts": max_attempts},
        )
    )
    boto3.setup_default_session(botocore_session=session)
