"""The inference image as SageMaker runs it: `docker run IMAGE serve`, HTTP on 8080.

Two long-lived containers (conftest) serve this module: `served` (defaults, the
model folder mounted at /opt/ml/model, fast path on) and `tuned` (model.tar.gz
left whole, SAGEMAKER_BIND_TO_PORT, three workers, a 1 MB payload limit, fast
path off).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import numpy as np
import pandas as pd
import pytest
import requests

from .conftest import InferenceServer, Tuned, running_server, serve_to_exit
from .models import Diabetes, full_split, make_readable, relative_error

pytestmark = pytest.mark.docker

TOLERANCE = 1e-9
MEBIBYTE = 1024 * 1024


def predictions(response: requests.Response) -> list:
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


# --- the reference's request and every input form --------------------------------------------


def test_reference_payload(served: InferenceServer, forest_model, diabetes_data: Diabetes) -> None:
    """ContentType application/json, body df.iloc[[0]].to_json(orient="split")."""
    body = diabetes_data.test.iloc[[0]].to_json(orient="split")
    response = served.invoke(body)
    assert response.headers["Content-Type"] == "application/json"
    received = pd.DataFrame(**json.loads(body))
    assert predictions(response) == forest_model.predict(received).tolist()


FORMS = {
    "dataframe_split": lambda f: {"dataframe_split": json.loads(full_split(f))},
    "dataframe_records": lambda f: {"dataframe_records": f.to_dict(orient="records")},
    "instances": lambda f: {"instances": f.to_dict(orient="records")},
    "instances-rows": lambda f: {"instances": f.values.tolist()},
    "inputs": lambda f: {"inputs": f.to_dict(orient="list")},
    "bare-split": lambda f: json.loads(full_split(f)),
    "bare-records": lambda f: f.to_dict(orient="records"),
}


@pytest.mark.parametrize("form", FORMS)
def test_json_forms(served: InferenceServer, forest_model, diabetes_data, form: str) -> None:
    rows = diabetes_data.test.iloc[:5]
    response = served.invoke(json.dumps(FORMS[form](rows)))
    assert predictions(response) == forest_model.predict(rows).tolist()


def test_legacy_pandas_split_content_type(served: InferenceServer, forest_model, diabetes_data):
    rows = diabetes_data.test.iloc[:2]
    response = served.invoke(full_split(rows), "application/json; format=pandas-split")
    assert predictions(response) == forest_model.predict(rows).tolist()


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
def test_csv_in_and_out(served: InferenceServer, forest_model, diabetes_data, header) -> None:
    rows = diabetes_data.test.iloc[:7]
    body = rows.to_csv(index=False, header=header)
    response = served.invoke(body, "text/csv", Accept="text/csv")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"
    values = [float(line) for line in response.text.splitlines()]
    assert values == forest_model.predict(rows).tolist()
    as_json = served.invoke(body, "text/csv")
    assert predictions(as_json) == values


# --- bad input -------------------------------------------------------------------------------

BAD_REQUESTS = [
    ("malformed-json", b'{"columns": ["age"', "application/json", 400, "malformed JSON"),
    ("empty-body", b"", "application/json", 400, "the request body is empty"),
    (
        "missing-column",
        b'{"columns": ["age", "sex"], "data": [[0.01, 0.05]]}',
        "application/json",
        400,
        "missing columns: bmi, bp, s1, s2, s3, s4, s5, s6",
    ),
    (
        "unknown-column",
        None,  # the test set's first row plus a "weight" column
        "application/json",
        400,
        "unknown columns: weight",
    ),
    (
        "wrong-type",
        None,  # the test set's first row with bmi as a string
        "application/json",
        400,
        "column 'bmi' expects double values; row 0 has string 'high'",
    ),
    ("csv-wrong-type", None, "text/csv", 400, "column 'age' expects double values"),
    ("unsupported-type", b"\x93NUMPY", "application/x-npy", 415, "unsupported Content-Type"),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input(served: InferenceServer, diabetes_data, body, content_type, status, message):
    record = diabetes_data.test.iloc[0].to_dict()
    if body is None and "unknown" in message:
        body = json.dumps({"dataframe_records": [{**record, "weight": 70.0}]})
    elif body is None and content_type == "text/csv":
        body = "abc," + ",".join(map(str, list(record.values())[1:]))
    elif body is None:
        body = json.dumps({"dataframe_records": [{**record, "bmi": "high"}]})
    response = served.invoke(body, content_type)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert message in response.json()["message"]


def test_bad_input_never_takes_a_worker_down(served: InferenceServer, diabetes_data) -> None:
    """The package's shared container: what this test's requests did, not what it holds."""
    before = served.logs()
    for case in BAD_REQUESTS:
        if case[1] is not None:
            served.invoke(case[1], case[2])
    assert served.invoke(diabetes_data.test.iloc[[0]].to_json(orient="split")).status_code == 200
    logs = served.logs()
    assert logs.startswith(before)
    during = logs[len(before) :]
    assert "Booting worker" not in during, during  # no worker was replaced
    assert "Traceback" not in during and "Worker exiting" not in during, during


# --- speed paths: the whole test set, every row ----------------------------------------------


def test_fast_path_equals_scikit_learn_on_every_row(
    served: InferenceServer, forest_model, diabetes_data: Diabetes
) -> None:
    assert requests.get(f"{served.url}/ping", timeout=5).json()["fast_path"].startswith("on (")
    expected = forest_model.predict(diabetes_data.test)
    whole = np.array(predictions(served.invoke(full_split(diabetes_data.test))))
    assert relative_error(whole, expected) <= TOLERANCE
    with requests.Session() as session:
        for index in range(len(diabetes_data.test)):
            response = session.post(
                f"{served.url}/invocations",
                data=full_split(diabetes_data.test.iloc[[index]]),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert relative_error(predictions(response), expected[index : index + 1]) <= TOLERANCE


def test_generic_path_equals_scikit_learn(tuned: Tuned, forest_model, diabetes_data) -> None:
    ping = requests.get(f"{tuned.server.url}/ping", timeout=5).json()
    assert ping["fast_path"] == "off (INFERENCE_FAST_PATH=false)"
    expected = forest_model.predict(diabetes_data.test)
    actual = np.array(predictions(tuned.server.invoke(full_split(diabetes_data.test))))
    assert relative_error(actual, expected) <= TOLERANCE


# --- the hosting contract ----------------------------------------------------------------------


def test_ping_answers_503_until_the_model_is_loaded(tuned: Tuned) -> None:
    """503 while any worker loads, then 200 from every worker (no flapping)."""
    statuses = [status for status in tuned.pings if status is not None]
    assert 503 in statuses, tuned.pings
    assert statuses[-1] == 200
    assert set(statuses) == {503, 200}
    with requests.Session() as session:
        after = [session.get(f"{tuned.server.url}/ping", timeout=2).status_code for _ in range(30)]
    fresh = [requests.get(f"{tuned.server.url}/ping", timeout=2).status_code for _ in range(10)]
    assert set(after + fresh) == {200}


def test_bind_to_port_and_workers(tuned: Tuned) -> None:
    logs = tuned.server.logs()
    assert "Listening at: http://0.0.0.0:9090" in logs
    assert logs.count("Booting worker") == 3, logs
    assert logs.count("model ready; fast path off") == 3, logs


def test_payload_limit(tuned: Tuned, forest_model, diabetes_data) -> None:
    """SAGEMAKER_MAX_PAYLOAD_IN_MB=1: a 1 MiB body is served, one byte more is refused."""
    copies = MEBIBYTE // len(full_split(diabetes_data.test))
    rows = pd.concat([diabetes_data.test] * copies)
    body = full_split(rows)
    assert len(body) < MEBIBYTE
    at_limit = body + b" " * (MEBIBYTE - len(body))
    # The generic path (scikit-learn), held to the relative bound.
    served = predictions(tuned.server.invoke(at_limit))
    assert len(served) == len(rows)
    assert relative_error(served, forest_model.predict(rows)) <= TOLERANCE
    response = tuned.server.invoke(at_limit + b" ")
    assert response.status_code == 413
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB=1" in response.json()["message"]


def test_default_payload_limit_is_6_mb(served: InferenceServer) -> None:
    response = served.invoke(b" " * (6 * MEBIBYTE + 1))
    assert response.status_code == 413
    assert served.invoke(b" " * (6 * MEBIBYTE)).status_code == 400  # read, then found empty


def test_custom_attributes_are_accepted_and_echoed(served: InferenceServer, diabetes_data):
    header = "X-Amzn-SageMaker-Custom-Attributes"
    body = diabetes_data.test.iloc[[0]].to_json(orient="split")
    response = served.invoke(body, **{header: "trace_id=42,tenant=a"})
    assert response.status_code == 200
    assert response.headers[header] == "trace_id=42,tenant=a"


def test_execution_parameters(served: InferenceServer, tuned: Tuned) -> None:
    assert requests.get(f"{served.url}/execution-parameters", timeout=5).json() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MULTI_RECORD",
        "MaxPayloadInMB": 6,
    }
    tuned_parameters = requests.get(f"{tuned.server.url}/execution-parameters", timeout=5).json()
    assert tuned_parameters["MaxConcurrentTransforms"] == 3
    assert tuned_parameters["MaxPayloadInMB"] == 1


def test_image_metadata(inference_image: str, served: InferenceServer) -> None:
    client = docker.from_env()
    config = client.images.get(inference_image).attrs["Config"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["User"] == "mlstack"
    assert config["Entrypoint"] == ["python", "-m", "mlstack.serving.entrypoint"]
    healthcheck = config["Healthcheck"]["Test"]
    assert healthcheck[0] == "CMD" and "curl" not in " ".join(healthcheck)
    code, output = served.container.exec(healthcheck[1:])
    assert code == 0, output


# --- start and stop ------------------------------------------------------------------------------


def test_no_model_stops_with_one_line(inference_image: str, tmp_path: Path) -> None:
    make_readable(tmp_path)
    status, logs = serve_to_exit(inference_image, tmp_path)
    assert status == 1
    assert logs.strip() == (
        "mlstack-inference: error: no MLflow model in /opt/ml/model: expected "
        "/opt/ml/model/MLmodel or /opt/ml/model/model.tar.gz (SageMaker extracts the model "
        "there), or set MODEL_URI, e.g. models:/NAME@champion"
    )


def test_unloadable_model_stops_the_server(inference_image: str, tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    make_readable(tmp_path)
    status, logs = serve_to_exit(inference_image, tmp_path)
    assert status != 0
    assert "mlstack-inference: error: cannot load the model" in logs


def test_sigterm_stops_promptly(inference_image: str, forest_model_dir: Path) -> None:
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    with running_server(inference_image, env, forest_model_dir) as server:
        wrapped = server.container.get_wrapped_container()
        started = time.monotonic()
        wrapped.stop(timeout=30)  # SIGTERM, then SIGKILL after 30 s as SageMaker does
        assert time.monotonic() - started < 10
        wrapped.reload()
        assert wrapped.attrs["State"]["ExitCode"] == 0
