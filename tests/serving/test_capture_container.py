"""Data capture and metrics of the real inference image, writing to the session's MinIO.

- Records read back match SageMaker's documented format field by field, under its key layout.
- Prometheus metrics on their own port add up across two gunicorn workers.
- MinIO paused under load: every prediction answers, the drops are counted, capture resumes.
- SIGTERM under load: everything queued is written before the workers exit (counted).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker
import pytest
import requests

from mlstack.serving import capture_format
from support.containers import has_exited, logs_of
from support.stack import MinIO
from support.waiting import wait_for_http, wait_until

from .models import Diabetes

pytestmark = pytest.mark.docker

METRICS_PORT = 8082
ENDPOINT, VARIANT = "capture-test", "AllTraffic"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@dataclass
class Endpoint:
    """A running inference container with capture on, and its capture prefix in MinIO."""

    container: object
    url: str
    metrics_url: str
    prefix: str
    minio: MinIO

    def invoke(self, body: str, content_type: str, inference_id: str | None = None):
        headers = {"Content-Type": content_type}
        if inference_id:
            headers[capture_format.INFERENCE_ID_HEADER] = inference_id
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=30)

    def objects(self) -> dict[str, bytes]:
        s3 = self.minio.s3()
        listed = s3.list_objects_v2(Bucket=self.minio.bucket, Prefix=self.prefix + "/")
        return {
            item["Key"]: s3.get_object(Bucket=self.minio.bucket, Key=item["Key"])["Body"].read()
            for item in listed.get("Contents", [])
        }

    def records(self) -> list[tuple[str, dict]]:
        return [
            (key, json.loads(line))
            for key, body in self.objects().items()
            for line in body.decode().splitlines()
        ]

    def metric(self, name: str, **labels: str) -> float:
        text = requests.get(f"{self.metrics_url}/metrics", timeout=5).text
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.escape(name) + (r"\{" + re.escape(selector) + r"\}" if labels else "")
        found = re.search(rf"^{pattern} ([0-9.e+-]+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


def start_endpoint(
    image: str, model_dir: Path, minio: MinIO, network, **env: str
) -> tuple[object, Endpoint]:
    """`serve` with capture into a fresh prefix of the session's bucket; 2 workers."""
    prefix = f"capture-{uuid.uuid4().hex[:8]}"
    environment = {
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "INFERENCE_CAPTURE_DESTINATION": f"s3://{minio.bucket}/{prefix}",
        "INFERENCE_CAPTURE_ENDPOINT": ENDPOINT,
        "INFERENCE_CAPTURE_FILE_SECONDS": "1",
        "AWS_ENDPOINT_URL_S3": minio.endpoint_in_network,
        "AWS_ACCESS_KEY_ID": minio.access_key,
        "AWS_SECRET_ACCESS_KEY": minio.secret_key,
        **env,
    }
    container = docker.from_env().containers.run(
        image,
        ["serve"],
        detach=True,
        environment=environment,
        network=network.name,
        volumes={str(model_dir): {"bind": "/opt/ml/model", "mode": "ro"}},
        ports={"8080/tcp": ("127.0.0.1", None), f"{METRICS_PORT}/tcp": ("127.0.0.1", None)},
        name=f"mlstack-test-capture-{uuid.uuid4().hex[:8]}",
    )
    container.reload()
    ports = container.ports
    url = f"http://127.0.0.1:{ports['8080/tcp'][0]['HostPort']}"
    metrics_url = f"http://127.0.0.1:{ports[f'{METRICS_PORT}/tcp'][0]['HostPort']}"
    wait_for_http(
        f"{url}/ping",
        timeout=120,
        give_up=lambda: has_exited(container),
        message=lambda: f"not ready: {logs_of(container)}",
    )
    return container, Endpoint(container, url, metrics_url, prefix, minio)


@pytest.fixture(scope="module")
def endpoint(inference_image, forest_model_dir, minio, docker_network) -> Iterator[Endpoint]:
    container, running = start_endpoint(inference_image, forest_model_dir, minio, docker_network)
    try:
        yield running
    finally:
        container.remove(force=True)


def complete(records: list, count: int) -> list | None:
    """The records once there are `count` of them."""
    return records if len(records) == count else None


def rows(data: Diabetes, count: int, start: int = 0):
    return data.test.iloc[start : start + count]


def test_records_match_sagemakers_format_field_by_field(endpoint: Endpoint, diabetes_data):
    frame = rows(diabetes_data, 2)
    sent = {
        "csv-no-header": (frame.to_csv(header=False, index=False), "text/csv"),
        "csv-header": (frame.to_csv(index=False), "text/csv; charset=utf-8"),
        "json-split": (frame.to_json(orient="split"), "application/json"),
        None: (json.dumps({"dataframe_records": frame.to_dict("records")}), "application/json"),
    }

    def this_tests_records() -> list[tuple[str, dict]]:
        """Records of the requests below, among the module's other tests' (the endpoint is
        shared): by inference id, or the one without an id by its body."""
        return [
            (key, record)
            for key, record in endpoint.records()
            if record["eventMetadata"].get("inferenceId", "") in sent
            or record["captureData"]["endpointInput"]["data"] == sent[None][0]
        ]

    answers = {}
    for inference_id, (body, content_type) in sent.items():
        answer = endpoint.invoke(body, content_type, inference_id)
        assert answer.status_code == 200, answer.text
        answers[inference_id] = answer
    found = wait_until(
        lambda: complete(this_tests_records(), len(sent)),
        timeout=30,
        message=lambda: (
            f"{len(this_tests_records())} of {len(sent)} records: {logs_of(endpoint.container)}"
        ),
    )
    layout = re.compile(
        rf"^{endpoint.prefix}/{ENDPOINT}/{VARIANT}/(\d{{4}})/(\d{{2}})/(\d{{2}})/(\d{{2}})/"
        rf"\d{{2}}-\d{{2}}-\d{{3}}-{UUID}\.jsonl$"
    )
    by_id = {record["eventMetadata"].get("inferenceId"): (key, record) for key, record in found}
    assert set(by_id) == set(sent)
    for inference_id, (body, content_type) in sent.items():
        key, record = by_id[inference_id]
        assert list(record) == ["captureData", "eventMetadata", "eventVersion"]
        assert record["eventVersion"] == "0"
        encoding = "CSV" if content_type.startswith("text/csv") else "JSON"
        assert record["captureData"]["endpointInput"] == {
            "observedContentType": content_type,
            "mode": "INPUT",
            "data": body,
            "encoding": encoding,
        }
        answer = answers[inference_id]
        assert record["captureData"]["endpointOutput"] == {
            "observedContentType": answer.headers["Content-Type"],
            "mode": "OUTPUT",
            "data": answer.text,
            "encoding": "JSON",
        }
        metadata = record["eventMetadata"]
        expected_keys = ["eventId", "inferenceId", "inferenceTime"]
        assert list(metadata) == (expected_keys if inference_id else ["eventId", "inferenceTime"])
        assert re.fullmatch(UUID, metadata["eventId"])
        when = datetime.strptime(metadata["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
        match = layout.match(key)
        assert match, key
        assert tuple(map(int, match.groups())) == (when.year, when.month, when.day, when.hour)


def test_metrics_add_up_across_workers(endpoint: Endpoint, diabetes_data):
    before = endpoint.metric("mlstack_inference_requests_total", path="/invocations", status="200")
    written_before = endpoint.metric("mlstack_inference_capture_records_written_total")
    body = rows(diabetes_data, 1).to_json(orient="split")
    # A new connection each: the kernel hands them to both workers.
    for _ in range(40):
        assert endpoint.invoke(body, "application/json").status_code == 200
    assert endpoint.invoke("x", "application/json").status_code == 400
    assert (
        endpoint.metric("mlstack_inference_requests_total", path="/invocations", status="200")
        == before + 40
    )
    assert (
        endpoint.metric("mlstack_inference_requests_total", path="/invocations", status="400") >= 1
    )
    assert (
        endpoint.metric("mlstack_inference_request_duration_seconds_count", path="/invocations")
        >= before + 41
    )
    assert endpoint.metric("mlstack_inference_model_load_seconds") > 0
    wait_until(
        lambda: (
            endpoint.metric("mlstack_inference_capture_records_written_total")
            == written_before + 40
        ),
        timeout=30,
        message="capture's written count never reached the requests sent",
    )


@dataclass
class Load:
    """Requests from a few threads until stopped; every answer and its inference id."""

    endpoint: Endpoint
    body: str
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[str, int | None]] = field(default_factory=list)
    slowest: float = 0.0

    def run(self, threads: int = 3, limit_s: float = 60) -> list[threading.Thread]:
        def send() -> None:
            session = requests.Session()
            deadline = time.monotonic() + limit_s
            while not self.stop.is_set() and time.monotonic() < deadline:
                inference_id = uuid.uuid4().hex
                started = time.monotonic()
                try:
                    answer = session.post(
                        f"{self.endpoint.url}/invocations",
                        data=self.body,
                        headers={
                            "Content-Type": "application/json",
                            capture_format.INFERENCE_ID_HEADER: inference_id,
                        },
                        timeout=10,
                    )
                    status: int | None = answer.status_code
                except requests.RequestException:
                    status = None
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.answers.append((inference_id, status))

        workers = [threading.Thread(target=send, daemon=True) for _ in range(threads)]
        for worker in workers:
            worker.start()
        return workers


@pytest.mark.fault
def test_paused_minio_drops_counted_predictions_unharmed(endpoint: Endpoint, diabetes_data):
    load = Load(endpoint, rows(diabetes_data, 1).to_json(orient="split"))
    paused = endpoint.minio.container.get_wrapped_container()
    dropped = "mlstack_inference_capture_records_dropped_total"
    before = endpoint.metric(dropped, reason="store_error")
    workers = load.run()
    paused.pause()
    try:
        wait_until(
            lambda: endpoint.metric(dropped, reason="store_error") > before,
            timeout=45,
            message="no store error counted while MinIO was paused",
        )
    finally:
        paused.unpause()
        load.stop.set()
        for worker in workers:
            worker.join(15)
    statuses = [status for _, status in load.answers]
    assert statuses and all(status == 200 for status in statuses), set(statuses)
    assert load.slowest < 3, f"a prediction took {load.slowest:.1f} s while MinIO was paused"
    # Capture resumes by itself: a request after the pause is written.
    after = uuid.uuid4().hex
    assert endpoint.invoke(load.body, "application/json", after).status_code == 200
    wait_until(
        lambda: any(r["eventMetadata"].get("inferenceId") == after for _, r in endpoint.records()),
        timeout=30,
        message="capture did not resume after MinIO came back",
    )


CLOSED = re.compile(r"data capture closed: (\d+) records accepted, (\d+) written, (\d+) dropped")


@pytest.mark.fault
def test_sigterm_under_load_writes_everything_queued(
    inference_image, forest_model_dir, minio, docker_network, diabetes_data
):
    # Files are due only after an hour: what reaches MinIO is what SIGTERM's close wrote.
    container, running = start_endpoint(
        inference_image,
        forest_model_dir,
        minio,
        docker_network,
        INFERENCE_CAPTURE_FILE_SECONDS="3600",
    )
    try:
        load = Load(running, rows(diabetes_data, 1).to_json(orient="split"))
        workers = load.run()
        wait_until(
            lambda: sum(status == 200 for _, status in load.answers) >= 100,
            timeout=60,
            message="fewer than 100 predictions",
        )
        container.stop(timeout=40)  # SIGTERM, then gunicorn's graceful stop
        load.stop.set()
        for worker in workers:
            worker.join(15)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    closed = [tuple(map(int, m)) for m in CLOSED.findall(logs)]
    assert len(closed) == 2, logs[-3000:]  # one line per worker
    accepted = sum(c[0] for c in closed)
    written = sum(c[1] for c in closed)
    assert (written, sum(c[2] for c in closed)) == (accepted, 0)
    captured = {r["eventMetadata"]["inferenceId"] for _, r in running.records()}
    assert len(captured) == written
    answered = {inference_id for inference_id, status in load.answers if status == 200}
    assert len(answered) >= 100 and answered <= captured
