"""Content negotiation: Content-Type and Accept, without a model or a server."""

from __future__ import annotations

import pytest

from mlstack.serving import content_types
from mlstack.serving.errors import NotAcceptable, UnsupportedMediaType


@pytest.mark.parametrize(
    ("header", "media"),
    [
        ("application/json", content_types.JSON),
        ("Application/JSON; charset=UTF-8", content_types.JSON),
        ("application/json; format=pandas-split", content_types.JSON),
        ("text/csv", content_types.CSV),
        ("text/csv; charset=utf-8", content_types.CSV),
    ],
)
def test_supported_content_types(header: str, media: str) -> None:
    assert content_types.parse_content_type(header)[0] == media


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "text/plain",
        "application/x-npy",
        "text/csv; charset=latin-1",
        "application/json; format=tf",
    ],
)
def test_unsupported_content_types(header) -> None:
    with pytest.raises(UnsupportedMediaType):
        content_types.parse_content_type(header)


@pytest.mark.parametrize(
    ("accept", "default", "chosen"),
    [
        (None, content_types.JSON, content_types.JSON),
        ("*/*", content_types.CSV, content_types.CSV),
        ("text/csv", content_types.JSON, content_types.CSV),
        ("text/csv;q=0.9, application/json", content_types.JSON, content_types.CSV),
        ("application/json, text/csv", content_types.CSV, content_types.JSON),
        ("image/png, text/*", content_types.JSON, content_types.CSV),
    ],
)
def test_accept(accept, default, chosen) -> None:
    assert content_types.choose_output(accept, default) == chosen


def test_unacceptable_accept() -> None:
    with pytest.raises(NotAcceptable):
        content_types.choose_output("application/xml", content_types.JSON)
