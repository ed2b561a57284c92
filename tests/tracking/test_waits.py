"""The start-up waits (tenacity): bounded, and ending in the one line that says what to fix."""

from __future__ import annotations

import time

import pytest

from mlstack.core.errors import StartupError
from mlstack.tracking import artifacts, database
from support.ports import free_port
from support.waiting import HANG_S


def test_an_absent_database_fails_within_its_bound() -> None:
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"did not answer within 2 s .*check DB_HOST / DB_PORT"):
        database.wait_for_database(f"mysql+pymysql://u:p@127.0.0.1:{free_port()}/db", 2)
    # It tried until its bound (not once), then gave up (did not hang on).
    assert 2 <= time.monotonic() - started < 2 + HANG_S


def test_an_absent_object_store_fails_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"did not answer within 2 s .*MLFLOW_S3_ENDPOINT_URL"):
        artifacts.check_bucket("s3://bucket/a", f"http://127.0.0.1:{free_port()}", 2)
    assert 2 <= time.monotonic() - started < 2 + HANG_S
