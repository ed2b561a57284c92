"""A missing artifact answers 404 RESOURCE_DOES_NOT_EXIST, not 500 INTERNAL_ERROR.

The proxied artifact routes (`GET /api/2.0/mlflow-artifacts/artifacts/<path>`: the FastAPI
route in mlflow/server/artifact_router.py, the Flask handler `_download_artifact` in
mlflow/server/handlers.py) answer an MlflowException with its own HTTP status. MLflow 3.17's
S3 repository lets boto3's ClientError for a missing key ("An error occurred (404) when
calling the HeadObject operation") through `_download_file`, and
`ArtifactRepository.download_artifacts` turns every such error into INTERNAL_ERROR, a 500,
which MLflow's clients retry with back-off (minutes), e.g. while `runs:/<run>/model` looks in
the run's artifacts before the logged model's. Raised as RESOURCE_DOES_NOT_EXIST instead,
download_artifacts keeps that code and the routes answer 404 at once; any other S3 error
(denied, unreachable, timed out) still fails as it did, a 5xx.
"""

from __future__ import annotations

from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository

# S3's error codes for a key that is not there: HeadObject answers a bare 404, GetObject
# NoSuchKey (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def is_not_found(error: ClientError) -> bool:
    """Whether S3 said the object does not exist (not: denied, throttled, failed)."""
    return str(error.response.get("Error", {}).get("Code", "")) in NOT_FOUND_CODES


class S3Repository(S3ArtifactRepository):
    """MLflow's S3 artifact repository, saying RESOURCE_DOES_NOT_EXIST for a missing file."""

    def _download_file(self, remote_file_path: str, local_path: str) -> None:
        try:
            super()._download_file(remote_file_path, local_path)
        except ClientError as error:
            if not is_not_found(error):
                raise
            raise MlflowException(
                f"no artifact at {remote_file_path}", error_code=RESOURCE_DOES_NOT_EXIST
            ) from None


def answer_missing_artifacts_with_404() -> None:
    """Serve s3:// artifact destinations through S3Repository in this process (MLflow's
    artifact repository registry maps a URI scheme to the repository class it builds)."""
    _artifact_repository_registry.register("s3", S3Repository)
