"""`make invoke-endpoint`: send the reference's request to a SageMaker endpoint; print the answer.

  python -m aws.invoke_endpoint

The body is the reference workflow's: the first test row as a pandas split frame,
`df.iloc[[0]].to_json(orient="split")`, where df holds the feature columns of TEST_CSV
(FEATURES, or every column but TARGET), sent as application/json.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from aws.common import ROOT, AwsScriptError, account_id, boto_session, main_wrapper, setting
from aws.deploy_endpoint import sagemaker_name

DEFAULT_TEST_CSV = ROOT / "data" / "diabetes" / "test" / "test.csv"
DEFAULT_TARGET = "progression"
CONTENT_TYPE = "application/json"


def reference_payload(csv_path: Path, target: str, features: list[str] | None = None) -> str:
    """The first row's features as `df.iloc[[0]].to_json(orient="split")`."""
    import pandas as pd

    if not csv_path.is_file():
        raise AwsScriptError(
            f"{csv_path} does not exist: run `python scripts/prepare_data.py --dataset "
            "diabetes --output data/diabetes` or set TEST_CSV"
        )
    frame = pd.read_csv(csv_path)
    columns = features or [str(c) for c in frame.columns if c != target]
    missing = [c for c in [*columns] if c not in frame.columns]
    if missing:
        raise AwsScriptError(f"{csv_path} has no column {' '.join(missing)}")
    if frame.empty:
        raise AwsScriptError(f"{csv_path} has no rows")
    df = frame[columns]
    return df.iloc[[0]].to_json(orient="split")


def data_hyperparameters(data_dir: Path) -> dict[str, str]:
    """The features and target that scripts/prepare_data.py wrote beside the channels
    (DATA_DIR/hyperparameters.json), or {} when there is no such file."""
    path = data_dir / "hyperparameters.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
    except ValueError:
        raise AwsScriptError(f"{path} is not JSON: run scripts/prepare_data.py again") from None
    return {k: str(v) for k, v in values.items() if k in {"features", "target"} and v}


def target_and_features(data_dir: Path) -> tuple[str, list[str] | None]:
    """TARGET and FEATURES, defaulting to DATA_DIR/hyperparameters.json, then progression."""
    written = data_hyperparameters(data_dir)
    target = setting("TARGET", written.get("target", DEFAULT_TARGET))
    features = features_setting()
    if features is None and not setting("TARGET", ""):  # the file's features go with its target
        features = [name for name in written.get("features", "").split() if name] or None
    return target, features


def invoke(runtime, endpoint: str, payload: str) -> str:
    """POST the payload to the endpoint; return the response body as text."""
    response = runtime.invoke_endpoint(
        EndpointName=endpoint, ContentType=CONTENT_TYPE, Accept=CONTENT_TYPE, Body=payload
    )
    return response["Body"].read().decode()


def features_setting() -> list[str] | None:
    """FEATURES: column names separated by spaces or commas; empty means all but TARGET."""
    names = [name for name in re.split(r"[\s,]+", setting("FEATURES", "")) if name]
    return names or None


@main_wrapper
def main() -> int:
    model_name = setting("MODEL_NAME", "")
    endpoint = setting("ENDPOINT_NAME", "")
    if not endpoint and not model_name:
        raise AwsScriptError("set ENDPOINT_NAME (or MODEL_NAME, as for make deploy-endpoint)")
    endpoint = sagemaker_name(endpoint or f"mlstack-{model_name}")
    test_csv = Path(setting("TEST_CSV", str(DEFAULT_TEST_CSV)))
    target, features = target_and_features(test_csv.parent.parent)
    payload = reference_payload(test_csv, target, features)
    session = boto_session()
    account_id(session)
    print(f"POST {endpoint}: {payload}", file=sys.stderr)
    print(invoke(session.client("sagemaker-runtime"), endpoint, payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
