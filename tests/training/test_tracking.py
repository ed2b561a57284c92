"""The runner's calls to the tracking server that need none: waiting, and what a URI shows."""

from __future__ import annotations

import socket
import time

import pytest

from mlstack.training.errors import TrainingError
from mlstack.training.tracking import redact, wait_for_server
from support.waiting import HANG_S


def test_unreachable_server_fails_within_the_wait() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    started = time.monotonic()
    with pytest.raises(TrainingError, match=r"did not answer within 2 s \(connection refused\)"):
        wait_for_server(f"http://127.0.0.1:{port}", 2)
    assert 2 <= time.monotonic() - started < 2 + HANG_S  # tried until its bound, then gave up


def test_redact_hides_credentials() -> None:
    assert redact("https://user:secret@mlflow.example.com:8443/x") == (
        "https://mlflow.example.com:8443/x"
    )
    assert redact("http://tracking-server:5000") == "http://tracking-server:5000"
