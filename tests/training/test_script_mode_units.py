"""Script mode's own parts that need no container: detection, the failure reason and the
child supervisor (streaming, tail, exit status, signals)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from mlstack.training.child import Supervisor
from mlstack.training.paths import FAILURE_REASON_LIMIT, OptML
from mlstack.training.script_mode import ScriptJob, failure_reason, requested


def test_script_mode_only_with_a_program(tmp_path: Path) -> None:
    opt_ml = OptML(tmp_path)
    assert not requested(opt_ml, {})
    opt_ml.hyperparameters_file.parent.mkdir(parents=True)
    opt_ml.hyperparameters_file.write_text(json.dumps({"n-estimators": "10"}))
    assert not requested(opt_ml, {"SAGEMAKER_PROGRAM": " "})
    assert requested(opt_ml, {"SAGEMAKER_PROGRAM": "train.py"})
    opt_ml.hyperparameters_file.write_text(json.dumps({"sagemaker_program": '"train.py"'}))
    assert requested(opt_ml, {})


def test_the_runner_gives_the_script_what_the_plugin_derives_and_its_job_key(
    tmp_path: Path,
) -> None:
    """No tracking URI anywhere: the file store in SM_OUTPUT_DATA_DIR, as the plugin says."""
    job = ScriptJob(OptML(tmp_path), env={})
    toolkit_vars = {
        "SM_TRAINING_ENV": "{}",
        "SM_HPS": json.dumps({"experiment_name": "exp"}),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
    }
    assert job.tracking_env(toolkit_vars) == {
        "MLFLOW_TRACKING_URI": (tmp_path / "output" / "data" / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_EXPERIMENT_NAME": "exp",
        "MLSTACK_JOB_KEY": job.job_key,
    }


def test_failure_reason_keeps_the_last_lines_within_what_sagemaker_shows() -> None:
    lines = [f"  frame {i}: " + "x" * 60 for i in range(40)] + ["ValueError: the real reason"]
    reason = failure_reason("the training script exited with code 1:", lines)
    assert len(reason) <= FAILURE_REASON_LIMIT
    assert reason.startswith("the training script exited with code 1:\n")
    assert reason.endswith("ValueError: the real reason")


def test_supervisor_streams_and_keeps_the_tail(capfd: pytest.CaptureFixture[str]) -> None:
    code = "import sys; print('out 1'); print('err 1', file=sys.stderr); sys.exit(3)"
    outcome = Supervisor().run([sys.executable, "-c", code], cwd=".")
    assert outcome.exit_code == 3
    assert outcome.tail == ["err 1"]
    assert outcome.stdout_tail == ["out 1"]
    captured = capfd.readouterr()
    assert "out 1" in captured.out and "err 1" in captured.err


def test_supervisor_passes_sigterm_to_the_child() -> None:
    supervisor = Supervisor()
    code = "import time; print('ready', flush=True); time.sleep(60)"
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    with supervisor.signals():
        timer.start()
        outcome = supervisor.run([sys.executable, "-c", code], cwd=".")
    assert time.monotonic() - started < 30
    assert supervisor.stopped_by == signal.SIGTERM
    assert outcome.exit_code == 128 + signal.SIGTERM
