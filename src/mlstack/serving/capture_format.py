"""SageMaker Data Capture's files: the record format and the key layout, written by the
inference image (capture.py) and read by `mlstack monitor`, whoever wrote them.

The contract, from AWS's documentation:
- "Capture data from real-time endpoint" (docs.aws.amazon.com/sagemaker/latest/dg/
  model-monitor-data-capture-endpoint.html, "View captured data"): the files are JSON Lines
  under `{DestinationS3Uri}/{endpoint-name}/{variant-name}/yyyy/mm/dd/hh/{file}.jsonl`, the
  hour being the UTC hour of the records; one record per line:
  {"captureData": {"endpointInput":  {"observedContentType": ..., "mode": "INPUT",
                                      "data": ..., "encoding": "CSV" | "JSON" | "BASE64"},
                   "endpointOutput": {... "mode": "OUTPUT" ...}},
   "eventMetadata": {"eventId": UUID, "inferenceId": ..., "inferenceTime": "...Z"},
   "eventVersion": "0"}
- DataCaptureConfig.CaptureContentTypeHeader (API_CaptureContentTypeHeader.html): content
  types listed in CsvContentTypes / JsonContentTypes are captured as text with encoding CSV /
  JSON, any other body base64-encoded (encoding BASE64).
- "Ingest Ground Truth labels and merge them with predictions"
  (model-monitor-model-quality-merge.html): `inferenceId` is in eventMetadata when the caller
  gave InferenceId (the X-Amzn-SageMaker-Inference-Id header); labels are matched on it, else
  on eventId.
Records a real endpoint wrote and records this image wrote are parsed by the same functions
below (`parse_record`), so `mlstack monitor` reads both alike.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

INPUT, OUTPUT = "INPUT", "OUTPUT"
CSV_ENCODING, JSON_ENCODING, BASE64_ENCODING = "CSV", "JSON", "BASE64"
EVENT_VERSION = "0"
# InvokeEndpoint's InferenceId reaches the container as this header (lower case in ASGI).
INFERENCE_ID_HEADER = "x-amzn-sagemaker-inference-id"
# The SageMaker Python SDK's DataCaptureConfig defaults (csv_content_types, json_content_types).
DEFAULT_CSV_TYPES = ("text/csv",)
DEFAULT_JSON_TYPES = ("application/json",)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as AWS's examples write inferenceTime


class CaptureFormatError(ValueError):
    """A line that is not a Data Capture record; the message says which part is wrong."""


def media_type(content_type: str) -> str:
    """The media type alone, lower case: 'text/csv' for 'text/csv; charset=utf-8'."""
    return content_type.split(";", 1)[0].strip().lower()


def encoding_for(
    content_type: str,
    csv_types: Iterable[str] = DEFAULT_CSV_TYPES,
    json_types: Iterable[str] = DEFAULT_JSON_TYPES,
) -> str:
    """CSV or JSON for a content type listed as such, else BASE64 (matched on media types)."""
    media = media_type(content_type)
    if media in {media_type(t) for t in csv_types}:
        return CSV_ENCODING
    if media in {media_type(t) for t in json_types}:
        return JSON_ENCODING
    return BASE64_ENCODING


def payload(
    body: bytes,
    content_type: str,
    mode: str,
    csv_types: Iterable[str] = DEFAULT_CSV_TYPES,
    json_types: Iterable[str] = DEFAULT_JSON_TYPES,
) -> dict[str, str]:
    """endpointInput / endpointOutput for one body: text when its type is listed as CSV or
    JSON and it is UTF-8, base64 otherwise."""
    encoding = encoding_for(content_type, csv_types, json_types)
    if encoding != BASE64_ENCODING:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = BASE64_ENCODING
    if encoding == BASE64_ENCODING:
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def record(
    when: datetime,
    request: tuple[str, bytes] | None,
    response: tuple[str, bytes] | None,
    inference_id: str | None = None,
    csv_types: Iterable[str] = DEFAULT_CSV_TYPES,
    json_types: Iterable[str] = DEFAULT_JSON_TYPES,
    event_id: str | None = None,
) -> dict:
    """One record: request and/or response as (content type, body), as the capture mode
    keeps them; inferenceId only when the caller sent one."""
    capture: dict[str, dict[str, str]] = {}
    if request is not None:
        capture["endpointInput"] = payload(request[1], request[0], INPUT, csv_types, json_types)
    if response is not None:
        capture["endpointOutput"] = payload(response[1], response[0], OUTPUT, csv_types, json_types)
    metadata = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = when.astimezone(UTC).strftime(TIME_FORMAT)
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": EVENT_VERSION}


def record_line(document: dict) -> bytes:
    """A record as one JSON Lines line, compact as AWS writes them."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def hour_prefix(prefix: str, endpoint: str, variant: str, when: datetime) -> str:
    """`{prefix}/{endpoint}/{variant}/yyyy/mm/dd/hh/`: where records of that UTC hour go."""
    hour = when.astimezone(UTC).strftime("%Y/%m/%d/%H")
    return "/".join(part for part in (prefix.strip("/"), endpoint, variant, hour) if part) + "/"


def object_key(prefix: str, endpoint: str, variant: str, when: datetime) -> str:
    """A new file's key: in its hour's folder, named `mm-ss-mmm-{uuid}.jsonl` after its first
    record's time, as SageMaker names them."""
    at = when.astimezone(UTC)
    name = f"{at:%M-%S}-{at.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
    return hour_prefix(prefix, endpoint, variant, when) + name


def split_s3_uri(uri: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix); ValueError naming what is wrong."""
    if not uri.startswith("s3://"):
        raise ValueError(f"must be s3://bucket[/prefix], got {uri!r}")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"must name a bucket: s3://bucket[/prefix], got {uri!r}")
    return bucket, prefix.strip("/")


# --- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """A captured body: its observed content type and encoding, and its bytes."""

    content_type: str
    encoding: str
    body: bytes

    @property
    def media_type(self) -> str:
        return media_type(self.content_type)

    def text(self) -> str:
        """The body as text (UTF-8, whatever its encoding in the record)."""
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Event:
    """One captured invocation."""

    event_id: str
    inference_id: str | None
    time: datetime
    input: Payload | None
    output: Payload | None

    @property
    def key(self) -> str:
        """What ground truth is matched on: inferenceId when given, else eventId."""
        return self.inference_id or self.event_id


def parse_time(text: str) -> datetime:
    """inferenceTime as UTC: '2022-02-14T17:25:49Z', with or without fractions of a second."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise CaptureFormatError(f"inferenceTime {text!r} is not an ISO 8601 time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _payload(document: object, mode: str) -> Payload | None:
    if document is None:
        return None
    if not isinstance(document, dict):
        raise CaptureFormatError(f"the {mode} capture is not an object")
    encoding = str(document.get("encoding", "")).upper()
    data = document.get("data")
    if not isinstance(data, str):
        raise CaptureFormatError(f"the {mode} capture has no data string")
    if encoding == BASE64_ENCODING:
        try:
            body = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise CaptureFormatError(f"the {mode} capture is not valid base64") from None
    elif encoding in (CSV_ENCODING, JSON_ENCODING):
        body = data.encode("utf-8")
    else:
        raise CaptureFormatError(f"the {mode} capture has an unknown encoding {encoding!r}")
    return Payload(str(document.get("observedContentType", "")), encoding, body)


def parse_record(document: object) -> Event:
    """A record (a parsed JSON line) as an Event; CaptureFormatError when it is not one."""
    if not isinstance(document, dict) or not isinstance(document.get("captureData"), dict):
        raise CaptureFormatError("no captureData object")
    metadata = document.get("eventMetadata")
    if not isinstance(metadata, dict) or not metadata.get("eventId"):
        raise CaptureFormatError("no eventMetadata.eventId")
    data = document["captureData"]
    inference_id = metadata.get("inferenceId")
    return Event(
        event_id=str(metadata["eventId"]),
        inference_id=str(inference_id) if inference_id else None,
        time=parse_time(str(metadata.get("inferenceTime", ""))),
        input=_payload(data.get("endpointInput"), INPUT),
        output=_payload(data.get("endpointOutput"), OUTPUT),
    )


def parse_lines(text: str, where: str = "") -> Iterator[Event]:
    """The events of one JSON Lines file; CaptureFormatError names the line that is wrong."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield parse_record(json.loads(line))
        except (ValueError, CaptureFormatError) as error:
            raise CaptureFormatError(f"{where or 'capture file'} line {number}: {error}") from None
