"""The metrics port's own checks, in-process (the container test scrapes real workers)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mlstack.serving import metrics


def test_a_metrics_port_in_use_stops_the_server_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_DIR, str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # serve() binds every address: this one is taken
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as stopped:
            metrics.serve(port)
    assert stopped.value.code == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"mlstack-inference: error: INFERENCE_METRICS_PORT={port}: ")
    assert line.endswith("choose a free port, or 0 for no metrics")
