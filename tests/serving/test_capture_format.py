"""Data Capture's record format and key layout, written and read back, and records in the
form AWS's documentation shows (captured by a real endpoint) read by the same parser."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime

import pytest

from mlstack.serving import capture_format as cf

WHEN = datetime(2026, 5, 1, 13, 7, 9, 123000, tzinfo=UTC)

# A record as AWS's "Capture data from real-time endpoint" page shows one (CSV in and out,
# no inferenceId), and one with a base64 body and an inferenceId.
AWS_CSV = (
    '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",'
    '"data":"132,25,113.2,96","encoding":"CSV"},"endpointOutput":{"observedContentType":'
    '"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.0254181120544672","encoding":"CSV"}},'
    '"eventMetadata":{"eventId":"8f45e35c-fa44-40d2-8ed3-1bcab3a596f3",'
    '"inferenceTime":"2020-07-30T13:36:30Z"},"eventVersion":"0"}'
)
AWS_BASE64 = json.dumps(
    {
        "captureData": {
            "endpointInput": {
                "observedContentType": "application/x-npy",
                "mode": "INPUT",
                "data": base64.b64encode(b"\x93NUMPY").decode(),
                "encoding": "BASE64",
            }
        },
        "eventMetadata": {
            "eventId": "4651a1bf-4b00-4248-a309-4a18b11e4277",
            "inferenceId": "order-17",
            "inferenceTime": "2021-09-27T03:47:25.123Z",
        },
        "eventVersion": "0",
    }
)


def test_record_fields_in_the_documented_form() -> None:
    document = cf.record(
        WHEN,
        ("text/csv", b"1,2,3\n"),
        ("application/json", b'{"predictions": [1.5]}'),
        inference_id="abc",
    )
    assert list(document) == ["captureData", "eventMetadata", "eventVersion"]
    assert document["eventVersion"] == "0"
    assert document["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": "1,2,3\n",
        "encoding": "CSV",
    }
    assert document["captureData"]["endpointOutput"] == {
        "observedContentType": "application/json",
        "mode": "OUTPUT",
        "data": '{"predictions": [1.5]}',
        "encoding": "JSON",
    }
    metadata = document["eventMetadata"]
    assert list(metadata) == ["eventId", "inferenceId", "inferenceTime"]
    assert re.fullmatch(r"[0-9a-f-]{36}", metadata["eventId"])
    assert metadata["inferenceId"] == "abc"
    assert metadata["inferenceTime"] == "2026-05-01T13:07:09Z"


def test_no_inference_id_no_key() -> None:
    metadata = cf.record(WHEN, ("text/csv", b"1"), None)["eventMetadata"]
    assert "inferenceId" not in metadata


@pytest.mark.parametrize(
    ("content_type", "encoding"),
    [
        ("text/csv", "CSV"),
        ("text/csv; charset=utf-8", "CSV"),
        ("application/json; format=pandas-split", "JSON"),
        ("APPLICATION/JSON", "JSON"),
        ("application/x-npy", "BASE64"),
        ("", "BASE64"),
    ],
)
def test_listed_types_are_text_others_base64(content_type: str, encoding: str) -> None:
    assert cf.payload(b"x", content_type, cf.INPUT)["encoding"] == encoding


def test_lists_decide_and_bad_utf8_goes_base64() -> None:
    assert cf.payload(b"1", "text/plain", cf.INPUT, csv_types=("text/plain",))["encoding"] == "CSV"
    assert cf.payload(b"1", "text/csv", cf.INPUT, csv_types=())["encoding"] == "BASE64"
    latin = cf.payload("é".encode("latin-1"), "text/csv", cf.INPUT)
    assert latin["encoding"] == "BASE64"
    assert base64.b64decode(latin["data"]) == "é".encode("latin-1")


def test_key_layout() -> None:
    key = cf.object_key("data-capture", "my-endpoint", "AllTraffic", WHEN)
    assert re.fullmatch(
        r"data-capture/my-endpoint/AllTraffic/2026/05/01/13/07-09-123-[0-9a-f-]{36}\.jsonl", key
    )
    assert cf.hour_prefix("", "e", "v", WHEN) == "e/v/2026/05/01/13/"


def test_written_records_read_back() -> None:
    lines = cf.record_line(cf.record(WHEN, ("text/csv", b"1,2"), ("text/csv", b"7\n"), "id-1"))
    lines += cf.record_line(cf.record(WHEN, ("application/x-npy", b"\x00\x01"), None))
    first, second = cf.parse_lines(lines.decode())
    assert (first.inference_id, first.key, first.time) == (
        "id-1",
        "id-1",
        WHEN.replace(microsecond=0),
    )
    assert first.input.body == b"1,2" and first.output.text() == "7\n"
    assert second.input.body == b"\x00\x01" and second.output is None
    assert second.key == second.event_id


def test_records_from_a_real_endpoint_read_alike() -> None:
    csv_event, npy_event = cf.parse_lines(AWS_CSV + "\n" + AWS_BASE64 + "\n")
    assert csv_event.input.media_type == "text/csv"
    assert csv_event.output.text() == "0.0254181120544672"
    assert csv_event.time == datetime(2020, 7, 30, 13, 36, 30, tzinfo=UTC)
    assert npy_event.inference_id == "order-17"
    assert npy_event.input.body == b"\x93NUMPY"
    assert npy_event.time.microsecond == 123000


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 1"),
        ('{"eventMetadata": {"eventId": "x"}}', "no captureData"),
        ('{"captureData": {}}', "no eventMetadata.eventId"),
        (
            '{"captureData": {"endpointInput": {"data": "!!", "encoding": "BASE64"}},'
            ' "eventMetadata": {"eventId": "x", "inferenceTime": "2020-01-01T00:00:00Z"}}',
            "not valid base64",
        ),
        (
            '{"captureData": {}, "eventMetadata": {"eventId": "x", "inferenceTime": "soon"}}',
            "not an ISO 8601 time",
        ),
    ],
)
def test_bad_lines_name_what_is_wrong(line: str, message: str) -> None:
    with pytest.raises(cf.CaptureFormatError, match=message):
        list(cf.parse_lines(line, "f.jsonl"))


def test_destination() -> None:
    assert cf.split_s3_uri("s3://bucket/a/b/") == ("bucket", "a/b")
    assert cf.split_s3_uri("s3://bucket") == ("bucket", "")
    with pytest.raises(ValueError, match="s3://bucket"):
        cf.split_s3_uri("/tmp/capture")
