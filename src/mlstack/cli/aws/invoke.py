"""`mlstack aws invoke` (`make invoke-endpoint`): send the reference's request to a SageMaker
endpoint; print the answer.

The body is the reference workflow's: the first test row as a pandas split frame,
`df.iloc[[0]].to_json(orient="split")`, where df holds the feature columns of TEST_CSV
(FEATURES, or every column but TARGET), sent as application/json.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlstack.cli.aws.common import (
    AwsScriptError,
    account_id,
    boto_session,
    endpoint_name,
)
from mlstack.cli.channels import CONTENT_TYPE, reference_payload, target_and_features
from mlstack.cli.settings import AwsSettings


def invoke(runtime, endpoint: str, payload: str) -> str:
    """POST the payload to the endpoint; return the response body as text."""
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType=CONTENT_TYPE, Accept=CONTENT_TYPE, Body=payload
    )
    return response["Body"].read().decode()


def main(settings: AwsSettings) -> None:
    """Send the first test row to ENDPOINT_NAME (or mlstack-MODEL_NAME); print the answer."""
    if not settings.endpoint_name and not settings.model_name:
        raise AwsScriptError("set ENDPOINT_NAME (or MODEL_NAME, as for make deploy-endpoint)")
    endpoint = endpoint_name(settings)
    test_csv = (
        Path(settings.test_csv) if settings.test_csv else settings.data_dir / "test" / "test.csv"
    )
    target, features = target_and_features(
        test_csv.parent.parent, settings.target, settings.features
    )
    payload = reference_payload(test_csv, target, features)
    session = boto_session(settings)
    account_id(session)
    print(f"POST {endpoint}: {payload}", file=sys.stderr)
    print(invoke(session.client("sagemaker-runtime"), endpoint, payload))
