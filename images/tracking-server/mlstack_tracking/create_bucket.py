"""One-shot job: create the artifact bucket if it is missing (safe to run again).

Used by the local stack's `create-bucket` service, before the server starts.
"""

from __future__ import annotations

import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mlstack_tracking.artifacts import split_s3_uri

WAIT_SECONDS = 60


def ensure_bucket(destination: str, endpoint_url: str | None) -> str:
    """Create the bucket of an s3:// destination unless it exists; say which happened."""
    bucket, _ = split_s3_uri(destination)
    client = boto3.client(
        "s3", endpoint_url=endpoint_url, config=Config(retries={"max_attempts": 3})
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            client.head_bucket(Bucket=bucket)
            return f"bucket {bucket} already exists"
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 404:
                raise
            client.create_bucket(Bucket=bucket)
            return f"created bucket {bucket}"
        except BotoCoreError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1)


def main() -> None:
    """Entry point: ARTIFACTS_DESTINATION and MLFLOW_S3_ENDPOINT_URL from the environment."""
    destination = os.environ.get("ARTIFACTS_DESTINATION", "")
    if not destination.startswith("s3://"):
        sys.exit("create-bucket: error: ARTIFACTS_DESTINATION must be s3://bucket[/prefix]")
    try:
        print(ensure_bucket(destination, os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None))
    except (BotoCoreError, ClientError) as error:
        sys.exit(f"create-bucket: error: {error}")


if __name__ == "__main__":
    main()
