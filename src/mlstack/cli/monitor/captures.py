"""Captured traffic from S3 (MinIO locally): the Data Capture files of one endpoint variant
within a time range, as rows of features and predictions.

Files are found through SageMaker's layout (one folder per UTC hour, capture_format), read
with the same parser whether the inference image or a SageMaker endpoint wrote them, and
their request bodies decoded by the inference server's own decoder (JSON in MLflow's and
pandas' forms, CSV with or without a header), so what the monitor sees is what the model saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mlstack.core.errors import MlstackError
from mlstack.serving import capture_format, decoder
from mlstack.serving.content_types import CSV, JSON, parse_content_type
from mlstack.serving.errors import RequestError

# Columns the monitor adds to the captured rows (features keep their own names).
TIME, KEY, ROW, PREDICTION = "__time__", "__key__", "__row__", "__prediction__"
HOUR = timedelta(hours=1)


class CaptureError(MlstackError):
    """Captures that cannot be read; the message says where and what to do."""


@dataclass(frozen=True)
class Location:
    """One endpoint variant's captures: DestinationS3Uri, endpoint name, variant name."""

    destination: str
    endpoint: str
    variant: str = "AllTraffic"

    @property
    def uri(self) -> str:
        return f"{self.destination.rstrip('/')}/{self.endpoint}/{self.variant}/"


@dataclass
class Traffic:
    """What was read: one row per input row, and what could not be used."""

    rows: Any  # pandas DataFrame: features, TIME, KEY, ROW, PREDICTION
    files: int = 0
    events: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)
    positional_width: set[int] = field(default_factory=set)

    def skip(self, reason: str) -> None:
        self.unreadable[reason] = self.unreadable.get(reason, 0) + 1


def hours(since: datetime, until: datetime) -> Iterator[datetime]:
    """The UTC hours whose folders can hold records from since to until."""
    hour = since.replace(minute=0, second=0, microsecond=0)
    while hour < until:
        yield hour
        hour += HOUR


def list_files(s3: Any, location: Location, since: datetime, until: datetime) -> list[str]:
    """Keys of the capture files in the hour folders of the range, oldest first."""
    bucket, prefix = capture_format.split_s3_uri(location.destination)
    keys: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for hour in hours(since, until):
        folder = capture_format.hour_prefix(prefix, location.endpoint, location.variant, hour)
        for page in paginator.paginate(Bucket=bucket, Prefix=folder):
            keys += [
                item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".jsonl")
            ]
    return sorted(keys)


def read_events(
    s3: Any, location: Location, since: datetime, until: datetime
) -> tuple[list[capture_format.Event], int]:
    """The captured events in [since, until), and how many files held them."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _ = capture_format.split_s3_uri(location.destination)
    try:
        keys = list_files(s3, location, since, until)
        events = []
        for key in keys:
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
            lines = capture_format.parse_lines(text, f"s3://{bucket}/{key}")
            events += [event for event in lines if since <= event.time < until]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise CaptureError(f"cannot read {location.uri}: {code or error}") from None
    except BotoCoreError as error:
        raise CaptureError(f"cannot reach {location.uri}: {error}") from None
    except capture_format.CaptureFormatError as error:
        raise CaptureError(f"not a Data Capture file: {error}") from None
    return sorted(events, key=lambda event: event.time), len(keys)


def input_table(payload: capture_format.Payload, features: Sequence[str]) -> decoder.Table:
    """A captured request body as the server decodes it (RequestError when it cannot)."""
    media, params = parse_content_type(payload.content_type)  # the server's own check
    if media == CSV:
        parsed = decoder.parse_csv(payload.body, list(features))
    else:
        parsed = decoder.parse_json(payload.body, params.get("format"))
    if parsed.table is None:
        raise RequestError("a body without rows and columns")
    return parsed.table


def predictions(payload: capture_format.Payload) -> list[float | str | None]:
    """The predictions of a captured response: {"predictions": [...]}, a JSON list, or CSV
    lines; a row's first value when it has several."""
    import json

    text = payload.text().strip()
    if payload.media_type == JSON or text.startswith(("{", "[")):
        document = json.loads(text)
        if isinstance(document, dict):
            document = document.get("predictions", document.get("outputs", []))
        values = document if isinstance(document, list) else [document]
    else:
        values = [line.split(",")[0] for line in text.splitlines() if line.strip()]
    return [_first(value) for value in values]


def _first(value: Any) -> float | str | None:
    while isinstance(value, list | dict):
        items = list(value.values()) if isinstance(value, dict) else value
        value = items[0] if items else None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def to_rows(events: Sequence[capture_format.Event], features: Sequence[str]) -> Traffic:
    """One row per input row of every event: its features (named by the header or keys,
    else positionally in the model's order), time, key, row number and prediction."""
    import pandas as pd

    traffic = Traffic(rows=None, events=len(events))
    records: list[dict[str, Any]] = []
    for event in events:
        if event.input is None:
            traffic.skip("no input captured")
            continue
        try:
            table = input_table(event.input, features)
        except (RequestError, ValueError) as error:
            traffic.skip(f"unreadable input ({getattr(error, 'message', error)})")
            continue
        columns = table.columns
        if columns is None:
            width = len(table.rows[0]) if table.rows else 0
            columns = (
                list(features) if width == len(features) else [f"column_{i}" for i in range(width)]
            )
            if width != len(features):
                traffic.positional_width.add(width)
        outputs: list[Any] = []
        if event.output is not None:
            try:
                outputs = predictions(event.output)
            except ValueError:
                traffic.skip("unreadable output")
        for index, row in enumerate(table.rows):
            values = dict(zip(columns, row, strict=False))
            values.update(
                {
                    TIME: event.time,
                    KEY: event.key,
                    ROW: index,
                    PREDICTION: outputs[index] if index < len(outputs) else None,
                }
            )
            records.append(values)
    frame = pd.DataFrame.from_records(records)
    for column in frame.columns:
        if column not in (TIME, KEY, ROW):
            frame[column] = _numeric_if_possible(frame[column])
    traffic.rows = frame
    return traffic


def _numeric_if_possible(column: Any) -> Any:
    """CSV cells arrive as text: numbers when every present value is one."""
    import pandas as pd

    converted = pd.to_numeric(column, errors="coerce")
    if converted.notna().sum() == column.notna().sum():
        return converted
    return column.astype("string")
