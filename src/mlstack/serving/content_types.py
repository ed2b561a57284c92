"""Content negotiation: the request's media type from Content-Type, the answer's from Accept.

JSON and CSV in UTF-8; application/json may carry the format=pandas-split|pandas-records
parameter MLflow 1.x's scoring server took.
"""

from __future__ import annotations

from mlstack.serving.errors import NotAcceptable, UnsupportedMediaType

JSON = "application/json"
CSV = "text/csv"
LEGACY_FORMATS = {"pandas-split", "pandas-records"}


def parse_content_type(header: str | None) -> tuple[str, dict[str, str]]:
    """The media type and its parameters; 415 for anything but JSON and CSV in UTF-8."""
    if not header or not header.strip():
        raise UnsupportedMediaType(f"no Content-Type: send {JSON} or {CSV} (UTF-8)")
    media, *rest = (part.strip() for part in header.split(";"))
    media = media.lower()
    params = {}
    for part in rest:
        key, _, value = part.partition("=")
        params[key.strip().lower()] = value.strip().strip('"').lower()
    if media not in (JSON, CSV):
        raise UnsupportedMediaType(f"unsupported Content-Type {media!r}: send {JSON} or {CSV}")
    if params.get("charset", "utf-8") not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"unsupported charset {params['charset']!r}: send UTF-8")
    if media == JSON and params.get("format") not in (None, *LEGACY_FORMATS):
        raise UnsupportedMediaType(
            f"unsupported format {params['format']!r}: use pandas-split or pandas-records"
        )
    return media, params


def choose_output(accept: str | None, default: str = JSON) -> str:
    """The response media type from the Accept header, in the client's order of listing."""
    if not accept or not accept.strip():
        return default
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media == "*/*":
            return default
        if media in (JSON, "application/*"):
            return JSON
        if media in (CSV, "text/*"):
            return CSV
    raise NotAcceptable(f"cannot answer in {accept!r}: accept {JSON} or {CSV}")
