"""Data capture: what the endpoint was asked and answered, written to S3 (or MinIO) as
SageMaker Data Capture writes it (capture_format.py), without ever slowing a prediction.

On the request path a worker only draws the sample and puts the request's and response's
bytes on its queue (`offer`): no encoding, no I/O. The queue is bounded in bytes
(INFERENCE_CAPTURE_BUFFER_MB); when it is full the record is dropped and counted. One writer
thread per worker turns queued invocations into records, collects them into a file, and
uploads the file when it reaches INFERENCE_CAPTURE_FILE_MB, when it is
INFERENCE_CAPTURE_FILE_SECONDS old, or when the hour changes (each hour has its folder).
An upload that fails (the store is down or slow; bounded by short timeouts) drops that
file's records, counted, and the writer goes on with the next file, so capture resumes by
itself when the store answers again. `close` (the worker's ASGI lifespan shutdown, once
SIGTERM's graceful stop has answered every request in flight) writes everything still
queued, within a bound, and logs the counts.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mlstack.serving import capture_format

log = logging.getLogger("mlstack.serving.capture")

MODES = ("input", "output", "both")
# Writes to the store fail fast: a capture never waits minutes on a store that is down.
S3_CONNECT_TIMEOUT = 2
S3_READ_TIMEOUT = 5
S3_MAX_ATTEMPTS = 2
# How long close() may take to write what is queued (gunicorn's graceful_timeout is 25 s).
CLOSE_TIMEOUT = 15.0
# The writer takes what is queued this often (and when a file is due).
BATCH_SECONDS = 0.25

Counter = Callable[[str, int], None]  # (what, how many): "written", "queue_full", "store_error"


@dataclass(frozen=True)
class CaptureConfig:
    """SageMaker's DataCaptureConfig for this container, plus the writer's bounds."""

    destination: str  # s3://bucket/prefix (DestinationS3Uri)
    endpoint: str
    variant: str = "AllTraffic"
    sampling_percentage: int = 100  # InitialSamplingPercentage
    mode: str = "both"  # CaptureOptions: input, output or both
    csv_content_types: tuple[str, ...] = capture_format.DEFAULT_CSV_TYPES
    json_content_types: tuple[str, ...] = capture_format.DEFAULT_JSON_TYPES
    kms_key_id: str | None = None  # KmsKeyId
    buffer_bytes: int = 16 * 1024 * 1024
    file_bytes: int = 8 * 1024 * 1024
    file_seconds: float = 60.0


class Store(Protocol):
    """Where capture files go."""

    def put(self, key: str, body: bytes) -> None: ...


class S3Store:
    """A bucket through boto3: AWS, or MinIO with AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
    (boto3 reads them, and the credentials, itself)."""

    def __init__(self, bucket: str, kms_key_id: str | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
        if not kms_key_id:
            self.extra = {}
        config = Config(
            connect_timeout=S3_CONNECT_TIMEOUT,
            read_timeout=S3_READ_TIMEOUT,
            retries={"max_attempts": S3_MAX_ATTEMPTS, "mode": "standard"},
        )
        self.client = boto3.client("s3", config=config)

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/jsonl", **self.extra
        )


@dataclass
class Invocation:
    """What the request path queues: bytes and headers, nothing encoded yet."""

    time: float
    request: tuple[str, bytes] | None
    response: tuple[str, bytes] | None
    inference_id: str | None

    @property
    def size(self) -> int:
        return sum(len(part[1]) for part in (self.request, self.response) if part is not None)


@dataclass
class Counts:
    """What one worker's capture did: accepted on the request path, then written or dropped."""

    accepted: int = 0
    written: int = 0
    queue_full: int = 0
    store_error: int = 0

    @property
    def dropped(self) -> int:
        return self.queue_full + self.store_error

    def describe(self) -> str:
        return (
            f"{self.accepted} records accepted, {self.written} written, {self.dropped} dropped "
            f"({self.queue_full} queue full, {self.store_error} store errors)"
        )


@dataclass
class _File:
    """The file being collected: its records' lines, first record's time, when it opened."""

    first: datetime
    opened: float
    lines: list[bytes] = field(default_factory=list)
    size: int = 0


def _hour(when: datetime) -> str:
    return when.strftime("%Y%m%d%H")


class Capture:
    """One worker's capture: `offer` on the request path, a writer thread, `close` at exit."""

    def __init__(
        self,
        config: CaptureConfig,
        store_factory: Callable[[], Store] | None = None,
        count: Counter | None = None,
    ) -> None:
        self.config = config
        self.bucket, self.prefix = capture_format.split_s3_uri(config.destination)
        self.store_factory = store_factory or (lambda: S3Store(self.bucket, config.kms_key_id))
        self.count = count or (lambda what, n: None)
        self.counts = Counts()
        self._queue: deque[Invocation] = deque()
        self._queued_bytes = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._closed = False
        self._store_failing = False
        self._keep_input = config.mode in ("input", "both")
        self._keep_output = config.mode in ("output", "both")
        self._thread = threading.Thread(target=self._run, name="data-capture", daemon=True)
        self._thread.start()

    # --- the request path ------------------------------------------------------------------

    def offer(self, headers: Mapping[str, str], body: bytes, answer: Any) -> None:
        """Queue a successful invocation (answer: status, content_type, body) if it is in the
        sample; drop and count it when the queue is full. No I/O, no encoding, no raising."""
        if answer.status != 200 or self._closed:
            return
        percentage = self.config.sampling_percentage
        if percentage < 100 and random.random() * 100 >= percentage:  # noqa: S311 - sampling
            return
        item = Invocation(
            time.time(),
            (headers.get("content-type", ""), body) if self._keep_input else None,
            (answer.content_type, answer.body) if self._keep_output else None,
            headers.get(capture_format.INFERENCE_ID_HEADER) or None,
        )
        size = item.size
        with self._lock:
            full = self._queued_bytes + size > self.config.buffer_bytes
            if full:
                self.counts.queue_full += 1
            else:
                self._queue.append(item)
                self._queued_bytes += size
                self.counts.accepted += 1
        if full:
            self.count("queue_full", 1)

    # --- the writer thread -----------------------------------------------------------------

    def _take(self, wait: float) -> tuple[list[Invocation], bool]:
        """Everything queued (waiting up to `wait` s for something), and whether closing.

        The writer takes the queue in batches rather than waking for every request: the
        workers' request threads then rarely hand the interpreter to it."""
        with self._lock:
            if not self._queue and not self._closed:
                self._ready.wait(wait)
            items = list(self._queue)
            self._queue.clear()
            self._queued_bytes = 0
            return items, self._closed

    def _run(self) -> None:
        try:
            store: Store | None = self.store_factory()
        except Exception as error:  # no client at all: every record is dropped, counted
            log.error("data capture: cannot create the S3 client: %s", error)
            store = None
        file: _File | None = None
        while True:
            wait = BATCH_SECONDS
            if file is not None:
                wait = min(
                    wait, max(0.0, file.opened + self.config.file_seconds - time.monotonic())
                )
            items, closing = self._take(wait)
            for item in items:
                when = datetime.fromtimestamp(item.time, UTC)
                if file is not None and _hour(when) != _hour(file.first):
                    self._upload(store, file)
                    file = None
                if file is None:
                    file = _File(first=when, opened=time.monotonic())
                line = capture_format.record_line(self._record(item, when))
                file.lines.append(line)
                file.size += len(line)
                if file.size >= self.config.file_bytes:
                    self._upload(store, file)
                    file = None
            due = file is not None and time.monotonic() >= file.opened + self.config.file_seconds
            if file is not None and (due or closing):
                self._upload(store, file)
                file = None
            if closing:
                return

    def _record(self, item: Invocation, when: datetime) -> dict:
        return capture_format.record(
            when,
            item.request,
            item.response,
            item.inference_id,
            self.config.csv_content_types,
            self.config.json_content_types,
        )

    def _upload(self, store: Store | None, file: _File) -> None:
        """Write the file as one object; when that fails, drop its records, counted."""
        records = len(file.lines)
        key = capture_format.object_key(
            self.prefix, self.config.endpoint, self.config.variant, file.first
        )
        try:
            if store is None:
                raise RuntimeError("no S3 client")
            store.put(key, b"".join(file.lines))
        except Exception as error:
            self.counts.store_error += records
            self.count("store_error", records)
            if not self._store_failing:
                first_line = str(error).splitlines()[0] if str(error) else ""
                log.warning(
                    "data capture: cannot write s3://%s/%s (%s: %s); dropping records until "
                    "the store answers",
                    self.bucket,
                    key,
                    type(error).__name__,
                    first_line,
                )
            self._store_failing = True
            return
        if self._store_failing:
            log.warning("data capture: writing to s3://%s again", self.bucket)
        self._store_failing = False
        self.counts.written += records
        self.count("written", records)

    # --- the end ---------------------------------------------------------------------------

    def close(self, timeout: float = CLOSE_TIMEOUT) -> Counts:
        """Write what is queued (within `timeout`), stop the writer, log the counts."""
        with self._lock:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("data capture: still writing after %.0f s; records may be lost", timeout)
        log.info("data capture closed: %s", self.counts.describe())
        return self.counts


class NoCapture:
    """INFERENCE_CAPTURE_DESTINATION unset: nothing captured."""

    def offer(self, headers: Mapping[str, str], body: bytes, answer: Any) -> None:
        pass

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        pass


def for_config(config: CaptureConfig | None, count: Counter | None = None) -> Capture | NoCapture:
    """The worker's capture: on when configured, else a no-op."""
    return Capture(config, count=count) if config is not None else NoCapture()
