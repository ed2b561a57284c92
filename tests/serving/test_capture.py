"""Data capture's writer in-process: sampling, modes, rotation, a full queue, a failing
store, and close(). The store is a dict here (the writer's logic under test); the container
tests write to a real MinIO."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from mlstack.serving import capture_format
from mlstack.serving.capture import Capture, CaptureConfig
from support.waiting import wait_until

CSV_HEADERS = {"content-type": "text/csv"}


@dataclass
class Answer:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b'{"predictions": [1.0]}'


class DictStore:
    """Objects by key; fails while `down` is set; `gate` holds every put until set."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.down = False
        self.gate = threading.Event()
        self.gate.set()

    def put(self, key: str, body: bytes) -> None:
        self.gate.wait(10)
        if self.down:
            raise ConnectionError("store is down")
        self.objects[key] = body

    def events(self) -> list[capture_format.Event]:
        return [
            e for body in self.objects.values() for e in capture_format.parse_lines(body.decode())
        ]


def make(store: DictStore, **config) -> Capture:
    settings = {"destination": "s3://bucket/capture", "endpoint": "ep", "file_seconds": 0.2}
    return Capture(CaptureConfig(**{**settings, **config}), store_factory=lambda: store)


def test_every_offer_written_under_the_layout() -> None:
    store = DictStore()
    capture = make(store)
    for index in range(20):
        capture.offer(
            {**CSV_HEADERS, "x-amzn-sagemaker-inference-id": f"id-{index}"}, b"1,2", Answer()
        )
    counts = capture.close()
    assert (counts.accepted, counts.written, counts.dropped) == (20, 20, 0)
    assert all(key.startswith("capture/ep/AllTraffic/") for key in store.objects)
    assert sorted(e.inference_id for e in store.events()) == sorted(f"id-{i}" for i in range(20))


def test_files_rotate_by_time_and_size() -> None:
    store = DictStore()
    capture = make(store, file_seconds=0.1)
    capture.offer(CSV_HEADERS, b"1", Answer())
    wait_until(lambda: len(store.objects) == 1, timeout=5, message="no file after 0.1 s")
    capture.close()
    store = DictStore()
    capture = make(store, file_bytes=1000, file_seconds=60)
    for _ in range(30):
        capture.offer(CSV_HEADERS, b"x" * 100, Answer())
    capture.close()
    assert len(store.objects) > 3
    assert all(len(body) < 1400 for body in store.objects.values())
    assert len(store.events()) == 30


@pytest.mark.parametrize(
    ("mode", "has_input", "has_output"), [("input", True, False), ("output", False, True)]
)
def test_modes(mode: str, has_input: bool, has_output: bool) -> None:
    store = DictStore()
    capture = make(store, mode=mode)
    capture.offer(CSV_HEADERS, b"1,2", Answer())
    capture.close()
    (event,) = store.events()
    assert (event.input is not None, event.output is not None) == (has_input, has_output)


def test_sampling_and_failures_are_not_captured() -> None:
    store = DictStore()
    capture = make(store, sampling_percentage=0)
    capture.offer(CSV_HEADERS, b"1", Answer())
    assert capture.close().accepted == 0
    store = DictStore()
    capture = make(store, sampling_percentage=30)
    for _ in range(1000):
        capture.offer(CSV_HEADERS, b"1", Answer())
    capture.offer(CSV_HEADERS, b"1", Answer(status=400))
    accepted = capture.close().accepted
    assert 200 < accepted < 400  # 30 % of 1000, give or take


def test_a_full_queue_drops_and_counts() -> None:
    store = DictStore()
    store.gate.clear()  # the writer is stuck on its first upload
    counted: list[tuple[str, int]] = []
    capture = Capture(
        CaptureConfig("s3://b", "ep", buffer_bytes=1000, file_seconds=0.05),
        store_factory=lambda: store,
        count=lambda what, n: counted.append((what, n)),
    )
    capture.offer(CSV_HEADERS, b"x" * 100, Answer(body=b"1"))
    wait_until(lambda: capture.counts.accepted == 1 and not capture._queue, timeout=5)
    for _ in range(50):
        capture.offer(CSV_HEADERS, b"x" * 100, Answer(body=b"1"))
    assert capture.counts.queue_full > 0
    store.gate.set()
    counts = capture.close()
    assert counts.written == counts.accepted == 51 - counts.queue_full
    assert ("queue_full", 1) in counted


def test_a_failing_store_drops_counts_then_resumes() -> None:
    store = DictStore()
    store.down = True
    capture = make(store, file_seconds=0.05)
    capture.offer(CSV_HEADERS, b"1", Answer())
    wait_until(lambda: capture.counts.store_error == 1, timeout=5, message="no store error")
    store.down = False
    capture.offer(CSV_HEADERS, b"2", Answer())
    counts = capture.close()
    assert (counts.written, counts.store_error) == (1, 1)
    assert [e.input.body for e in store.events()] == [b"2"]


def test_close_writes_everything_queued() -> None:
    store = DictStore()
    capture = make(store, file_seconds=3600)
    for _ in range(500):
        capture.offer(CSV_HEADERS, b"1,2,3", Answer())
    counts = capture.close()
    assert counts.written == 500 and len(store.events()) == 500
    capture.offer(CSV_HEADERS, b"late", Answer())  # after close: ignored, not an error
    assert capture.counts.accepted == 500
