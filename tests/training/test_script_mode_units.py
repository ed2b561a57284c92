"""The runner's own parts that need no container: which script runs, hyperparameters.json,
the failure file and reason, the MLflow variables it gives the script, and the child
supervisor (streaming, tail, exit status, signals)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from mlstack.training.child import Outcome, Supervisor
from mlstack.training.errors import TrainingError
from mlstack.training.paths import FAILURE_REASON_LIMIT, OptML
from mlstack.training.script_mode import (
    BUILTIN_PROGRAM,
    BUILTIN_SOURCE,
    ScriptJob,
    failure_reason,
    read_hyperparameters,
    run_job,
)
from mlstack_mlflow_plugin.job import tracking_variables
from mlstack_mlflow_plugin.settings import read as read_job


def job(tmp_path: Path, env: dict[str, str]) -> ScriptJob:
    """A runner over tmp_path with its settings read from env."""
    from mlstack.training.config import read_settings

    runner = ScriptJob(OptML(tmp_path), env)
    runner.settings = read_settings(env)
    return runner


def test_the_built_in_script_runs_unless_the_job_names_one(tmp_path: Path) -> None:
    runner = job(tmp_path, {})
    assert runner.with_program({"n-estimators": 10}) == {
        "n-estimators": 10,
        "sagemaker_program": BUILTIN_PROGRAM,
        "sagemaker_submit_directory": str(BUILTIN_SOURCE),
    }
    assert runner.builtin
    assert (BUILTIN_SOURCE / BUILTIN_PROGRAM).is_file()
    assert not (BUILTIN_SOURCE / "requirements.txt").exists()  # nothing to install
    runner = job(tmp_path, {"SAGEMAKER_PROGRAM": " "})
    assert runner.with_program({})["sagemaker_program"] == BUILTIN_PROGRAM
    runner = job(tmp_path, {"SAGEMAKER_PROGRAM": "train.py"})
    assert runner.with_program({})["sagemaker_program"] == "train.py"
    assert not runner.builtin
    runner = job(tmp_path, {})
    assert runner.with_program({"sagemaker_program": "fit.py"})["sagemaker_program"] == "fit.py"
    assert not runner.builtin


def test_hyperparameters_json_is_read_and_a_broken_one_named(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    assert read_hyperparameters(path) == {}  # none given
    path.write_text("")
    assert read_hyperparameters(path) == {}
    path.write_text(json.dumps({"target": '"y"'}))
    assert read_hyperparameters(path) == {"target": '"y"'}
    path.write_text("{not json")
    with pytest.raises(TrainingError, match="is not valid JSON"):
        read_hyperparameters(path)
    path.write_text("[1, 2]")
    with pytest.raises(TrainingError, match="must hold a JSON object"):
        read_hyperparameters(path)


@pytest.mark.parametrize(
    ("env", "content", "message"),
    [
        (
            {"TRACKING_WAIT_TIMEOUT": "soon"},
            "{}",
            "TRACKING_WAIT_TIMEOUT must be a number of seconds",
        ),
        ({}, "{not json", "hyperparameters.json is not valid JSON"),
    ],
)
def test_bad_settings_fail_the_job_in_one_line(
    tmp_path: Path, env: dict[str, str], content: str, message: str
) -> None:
    opt_ml = OptML(tmp_path)
    opt_ml.hyperparameters_file.parent.mkdir(parents=True)
    opt_ml.hyperparameters_file.write_text(content)
    previous = signal.getsignal(signal.SIGTERM)
    assert run_job(opt_ml, env) == 1
    assert message in opt_ml.failure_file.read_text()
    assert len(opt_ml.failure_file.read_text().splitlines()) == 1
    assert signal.getsignal(signal.SIGTERM) is previous


def toolkit_vars(tmp_path: Path, hps: dict[str, str]) -> dict[str, str]:
    return {
        "SM_TRAINING_ENV": "{}",
        "SM_HPS": json.dumps(hps),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output" / "data"),
    }


def test_without_a_tracking_uri_the_plugin_gives_the_script_the_jobs_file_store(
    tmp_path: Path,
) -> None:
    """No tracking URI anywhere: the runner exports only the job key, and the script's MLflow
    client gets the file store in SM_OUTPUT_DATA_DIR from the plugin."""
    runner = job(tmp_path, {})
    exported = runner.tracking_env(toolkit_vars(tmp_path, {"experiment_name": "exp"}))
    assert exported == {"MLSTACK_JOB_KEY": runner.job_key}
    script_env = {**toolkit_vars(tmp_path, {"experiment_name": "exp"}), **exported}
    assert tracking_variables(read_job(script_env)) == {
        "MLFLOW_TRACKING_URI": (tmp_path / "output" / "data" / "mlruns").as_uri(),
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "MLFLOW_EXPERIMENT_NAME": "exp",
    }


def test_the_runner_exports_the_jobs_tracking_uri_hyperparameter_first(tmp_path: Path) -> None:
    """A store the runner cannot reach over REST (here SQLite): exported, not checked."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runner = job(tmp_path, {"MLFLOW_TRACKING_URI": "http://env:5000"})
    exported = runner.tracking_env(toolkit_vars(tmp_path, {"tracking_uri": store}))
    assert exported == {"MLFLOW_TRACKING_URI": store, "MLSTACK_JOB_KEY": runner.job_key}
    assert runner.tracking is None


def test_failure_reason_keeps_the_last_lines_within_what_sagemaker_shows() -> None:
    lines = [f"  frame {i}: " + "x" * 60 for i in range(40)] + ["ValueError: the real reason"]
    reason = failure_reason("the training script exited with code 1:", lines)
    assert len(reason) <= FAILURE_REASON_LIMIT
    assert reason.startswith("the training script exited with code 1:\n")
    assert reason.endswith("ValueError: the real reason")


def test_the_built_in_scripts_last_line_is_the_reason(tmp_path: Path) -> None:
    runner = job(tmp_path, {})
    runner.with_program({})
    said = Outcome(1, ["... INFO training"], ["a warning", "unknown feature x: not in the data"])
    assert runner.script_failure(said) == "unknown feature x: not in the data"
    killed = Outcome(137, [], ["a warning"])  # not its own exit: the usual reason
    assert runner.script_failure(killed) == "the training script exited with code 137:\na warning"
    user = job(tmp_path, {"SAGEMAKER_PROGRAM": "train.py"})
    user.with_program({})
    assert user.script_failure(said).startswith("the training script exited with code 1:\n")


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
    previous = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    with supervisor.signals():
        timer.start()
        outcome = supervisor.run([sys.executable, "-c", code], cwd=".")
    assert time.monotonic() - started < 30
    assert supervisor.stopped_by == signal.SIGTERM
    assert outcome.exit_code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is previous
