"""The job's one runner: the user's training script, or the image's built-in one
(builtin/random_forest.py) when the job names none, run as SageMaker's framework containers
run a script.

SageMaker's scikit-learn container hands the job to sagemaker-training (the toolkit,
aws/sagemaker-training-toolkit 5.1.4), whose `trainer.train()` builds the training
environment, unpacks the source, installs it and runs the entry point
(`entry_point.run`). This runner uses the toolkit's own pieces for each of those steps, so
the contract is the toolkit's by construction:

- reserved hyperparameters sagemaker_program, sagemaker_submit_directory,
  sagemaker_container_log_level, sagemaker_job_name, sagemaker_region (JSON-decoded,
  removed from the script's arguments): `environment.Environment`;
- the source at /opt/ml/code, from an s3:// or local sourcedir.tar.gz or a directory:
  `files.download_and_extract`;
- `pip install . [-r requirements.txt]` when setup.py is there, else
  `pip install -r requirements.txt` when requirements.txt is (`modules.install`,
  `modules.install_requirements`), chmod of command entry points (`entry_point.install`);
- the SM_* variables (`Environment.to_env_vars`, `environment.write_env_vars`) and the command
  `python ENTRY --key value ...`, `python -m MODULE ...` or `/bin/sh -c ./ENTRY ...`
  (`process.ProcessRunner._create_command`, which also validates the entry point's name).

What it does itself, where the toolkit falls short of the job contract here: the children
(pip and the script) are run by `child.Supervisor`, which streams their output, keeps their
last lines for /opt/ml/output/failure (the toolkit's reason is the process's stderr from
the first line that names an exception class, or nothing at all) and passes SIGTERM on (the
toolkit installs no handler, and PID 1 ignores signals it does not handle). It checks the
tracking server and the experiment the job's MLflow settings name before the script runs
(the image's MLflow plugin, mlstack_mlflow_plugin, gives the script those settings and tags
its runs, from the SM_* variables exported here), writes the failure file, and ends the runs
a failed job left RUNNING (KILLED when SIGTERM stopped it).

The built-in script is the image's own source (sagemaker_submit_directory, unpacked to
/opt/ml/code like any other); it states a failure in one last line on stderr, which becomes
the job's failure reason as it is.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlstack.training.child import Outcome, Supervisor
from mlstack.training.config import Settings, read_settings
from mlstack.training.errors import Terminated, TrainingError
from mlstack.training.paths import FAILURE_REASON_LIMIT, OptML
from mlstack.training.tracking import RestTracking, redact, wait_for_server
from mlstack_mlflow_plugin.job import tracking_variables
from mlstack_mlflow_plugin.settings import JOB_KEY_ENV
from mlstack_mlflow_plugin.settings import read as read_job

log = logging.getLogger(__name__)

PROGRAM = "sagemaker_program"  # sagemaker_training.params.USER_PROGRAM_PARAM
SOURCE = "sagemaker_submit_directory"  # sagemaker_training.params.SUBMIT_DIR_PARAM
BUILTIN_SOURCE = Path(__file__).resolve().parent / "builtin"
BUILTIN_PROGRAM = "random_forest.py"
EXIT_FAILED = 1
# SageMaker's resourceconfig.json for a single instance, when a hand-made /opt/ml lacks it.
SINGLE_HOST = {"current_host": "algo-1", "hosts": ["algo-1"]}


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """hyperparameters.json as SageMaker writes it (a JSON object of name -> string), {} when
    absent or empty; a broken file fails the job in one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise TrainingError(f"{path} is not readable: {error}") from None
    try:
        raw = json.loads(text or "{}")
    except ValueError as error:
        raise TrainingError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise TrainingError(f"{path} must hold a JSON object of name -> string")
    return raw


def failure_reason(header: str, lines: list[str]) -> str:
    """header and as many of the LAST lines as fit in what SageMaker shows (1024 chars)."""
    kept: list[str] = []
    room = FAILURE_REASON_LIMIT - len(header) - 1
    for line in reversed(lines):
        if len(line) + 1 > room:
            break
        kept.insert(0, line)
        room -= len(line) + 1
    return "\n".join([header, *kept])


def log_invocation(cmd: list[str], training_env: Any, env_vars: Mapping[str, str]) -> None:
    """What sagemaker_training.logging_config.log_script_invocation logs, from this job's
    environment: that one builds another from the config files, which a hand-made /opt/ml
    may lack (and without the built-in script's sagemaker_program)."""
    log.info(
        "Invoking user script\n\nTraining Env:\n\n%s\n\nEnvironment variables:\n\n%s\n\n"
        "Invoking script with the following command:\n\n%s\n",
        json.dumps(dict(training_env), indent=4, default=str),
        "\n".join(f"{key}={value}" for key, value in env_vars.items()),
        " ".join(cmd),
    )


class ScriptJob:
    """One job, from the toolkit's environment to the script's exit."""

    def __init__(self, opt_ml: OptML, env: Mapping[str, str] | None = None) -> None:
        self.opt_ml = opt_ml
        self.env = env  # None: os.environ, read once the job starts (config.read_settings)
        # The defaults until execute() reads and checks them, where a bad one fails the job.
        self.settings = Settings.model_construct()
        self.supervisor = Supervisor()
        self.job_key = uuid.uuid4().hex
        self.tracking: RestTracking | None = None
        self.builtin = False  # True when the job names no script: the built-in one runs

    # --- the toolkit's steps ------------------------------------------------------------

    def hyperparameters(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The job's hyperparameters as the toolkit reads them (each value JSON-decoded where
        it can be), naming the script to run."""
        from sagemaker_training import environment

        return self.with_program(environment.read_hyperparameters() if raw else {})

    def with_program(self, hyperparameters: dict[str, Any]) -> dict[str, Any]:
        """hyperparameters naming the job's script: the one SAGEMAKER_PROGRAM or
        sagemaker_program names, else the built-in one, from the image's own source."""
        named = self.settings.program or hyperparameters.get(PROGRAM)
        self.builtin = not named
        if self.builtin:
            return {**hyperparameters, PROGRAM: BUILTIN_PROGRAM, SOURCE: str(BUILTIN_SOURCE)}
        return {**hyperparameters, PROGRAM: named}

    def training_environment(self, hyperparameters: dict[str, Any]) -> Any:
        """sagemaker_training.environment.Environment over this /opt/ml."""
        from sagemaker_training import environment

        config = self.opt_ml.input_data_config_file
        resource = config.parent / "resourceconfig.json"
        channels = None
        if not config.exists():  # SageMaker always writes it; a hand-made /opt/ml may not
            data = self.opt_ml.root / "input" / "data"
            found = sorted(data.iterdir()) if data.is_dir() else []
            channels = {p.name: {} for p in found if p.is_dir()} or None
            if channels is None:
                raise TrainingError(f"{config} is missing and the job has no input channel")
        return environment.Environment(
            resource_config=None if resource.exists() else dict(SINGLE_HOST),
            input_data_config=channels,
            hyperparameters=hyperparameters,
        )

    def source(self, training_env: Any) -> Path:
        """Unpack sagemaker_submit_directory into /opt/ml/code (a no-op for a mounted dir)."""
        from sagemaker_training import environment, files

        uri = str(training_env.module_dir)
        if uri.startswith("file://"):
            uri = uri[len("file://") :]
        code = Path(environment.code_dir)
        if not uri.startswith("s3://") and not os.path.exists(uri):
            raise TrainingError(
                f"sagemaker_submit_directory {uri!r} does not exist: give the job its source "
                "(source_dir in the SDK, SOURCE_DIR in make)"
            )
        try:
            files.download_and_extract(uri=uri, path=str(code))
        except Exception as error:  # boto3, tarfile and OS errors alike: say which source
            raise TrainingError(
                f"could not unpack the source from {uri}: {type(error).__name__}: {error}"
            ) from None
        return code

    def entry_point(self, training_env: Any, code: Path) -> tuple[str, Any]:
        """The validated entry point and its toolkit type (python program/package, command)."""
        from sagemaker_training import _entry_point_type, errors, process

        name = training_env.user_entry_point or ""
        try:
            process.validate_entry_point(name)
        except errors.ClientError as error:
            raise TrainingError(str(error)) from None
        if not (code / name).is_file():
            present = sorted(p.name for p in code.iterdir())[:10] if code.is_dir() else []
            raise TrainingError(
                f"entry point {name!r} is not in the source directory ({code} holds: "
                f"{' '.join(present) or 'nothing'}): set entry_point / ENTRY_POINT to a file "
                "of source_dir / SOURCE_DIR"
            )
        return name, _entry_point_type.get(str(code), name)

    def install(self, code: Path, name: str, kind: Any) -> None:
        """pip-install the source and its requirements.txt as sagemaker_training.modules
        does; chmod a command entry point as sagemaker_training.entry_point.install does."""
        from sagemaker_training import _entry_point_type, modules

        pip = [sys.executable, "-m", "pip", "install"]
        has_requirements = (code / "requirements.txt").exists()
        if kind is _entry_point_type.PYTHON_PACKAGE:
            cmd = [*pip, ".", *(["-r", "requirements.txt"] if has_requirements else [])]
        elif kind is _entry_point_type.PYTHON_PROGRAM and has_requirements:
            cmd = [*pip, "-r", "requirements.txt"]
        else:
            cmd = []
        if cmd and self.settings.codeartifact_repository:
            cmd += ["-i", modules._get_codeartifact_index()]
        if cmd:
            log.info("installing: %s", " ".join(cmd[2:]))
            outcome = self.supervisor.run(cmd, cwd=str(code))
            self._raise_if_stopped()
            if outcome.exit_code != 0:
                raise TrainingError(
                    failure_reason(
                        f"{' '.join(cmd[2:])} failed (exit {outcome.exit_code}); fix "
                        "requirements.txt / setup.py. pip said:",
                        outcome.tail,
                    )
                )
        if kind is _entry_point_type.COMMAND:
            os.chmod(code / name, 0o777)  # noqa: S103 - what the toolkit does (511)

    def command(self, name: str, training_env: Any, env_vars: Mapping[str, str]) -> list[str]:
        """`python ENTRY --key value ...` (or `-m MODULE`, `/bin/sh -c ./ENTRY`) as the
        toolkit's ProcessRunner builds it: what runner.get gives a single-process job,
        without the runner module's MPI imports (paramiko)."""
        from sagemaker_training import process

        runner = process.ProcessRunner(name, training_env.to_cmd_args(), env_vars, 1)
        return list(runner._create_command())

    # --- tracking ------------------------------------------------------------------------

    def tracking_env(self, env_vars: Mapping[str, str]) -> dict[str, str]:
        """MLflow's variables for the script, as the image's MLflow plugin derives them from
        the job's environment (one derivation: mlstack_mlflow_plugin.job), and the job key
        the plugin tags the script's runs with. Checks the server and the experiment first.
        With no tracking URI the script gets none: the plugin points its MLflow client at the
        job's file store, and the built-in script then logs to no MLflow."""
        job = read_job({**(os.environ if self.env is None else self.env), **env_vars})
        variables = tracking_variables(job)
        key = {JOB_KEY_ENV: self.job_key}
        uri = variables["MLFLOW_TRACKING_URI"]
        experiment = variables.get("MLFLOW_EXPERIMENT_NAME", "")
        if "MLFLOW_ALLOW_FILE_STORE" in variables:
            if not self.builtin:
                log.info(
                    "no tracking URI (tracking_uri hyperparameter or MLFLOW_TRACKING_URI): the "
                    "script's MLflow runs go to %s",
                    uri,
                )
            return key
        if urlsplit(uri).scheme not in ("http", "https"):
            log.info("the script tracks to %s, which the runner does not check", redact(uri))
            return {**variables, **key}
        wait_for_server(uri, self.settings.tracking_wait_timeout)
        self.tracking = RestTracking(uri, self.settings)
        if experiment:
            self.tracking.ensure_experiment(experiment)
        log.info("the script tracks to %s, experiment %r", redact(uri), experiment or "Default")
        return {**variables, **key}

    # --- the job -------------------------------------------------------------------------

    def _raise_if_stopped(self) -> None:
        if self.supervisor.stopped_by is not None:
            raise Terminated(self.supervisor.stopped_by)

    def execute(self) -> Outcome:
        """Every step up to the script's exit; TrainingError / Terminated on the way."""
        self.settings = read_settings(self.env)
        raw = read_hyperparameters(self.opt_ml.hyperparameters_file)
        from sagemaker_training import environment, logging_config

        training_env = self.training_environment(self.hyperparameters(raw))
        logging_config.configure_logger(training_env.log_level)
        log.info(
            "training job %s: %s",
            self.settings.job_name or "(no TRAINING_JOB_NAME)",
            "the built-in RandomForest" if self.builtin else "the script",
        )
        code = self.source(training_env)
        name, kind = self.entry_point(training_env, code)
        env_vars = training_env.to_env_vars()
        tracking = self.tracking_env(env_vars)
        self.install(code, name, kind)
        if str(code) not in sys.path:  # as entry_point.install: the code dir leads PYTHONPATH
            sys.path.insert(0, str(code))
        # Written for the script (the child inherits os.environ), not read: the toolkit's SM_*
        # and PYTHONPATH (SageMaker's script-mode contract), then the job's MLflow settings.
        environment.write_env_vars(env_vars)
        os.environ.update(tracking)
        cmd = self.command(name, training_env, env_vars)
        if len(training_env.hosts) > 1:  # distributed: wait for the other hosts' DNS names,
            from sagemaker_training import entry_point  # as entry_point.run does

            entry_point._wait_hostname_resolution()
        log_invocation(cmd, training_env, env_vars)
        outcome = self.supervisor.run(cmd, cwd=str(code))
        self._raise_if_stopped()
        return outcome

    def script_failure(self, outcome: Outcome) -> str:
        """Why the script failed: the built-in script's own last line, or the exit code and
        the script's last lines."""
        if self.builtin and outcome.exit_code == EXIT_FAILED and outcome.stderr_tail:
            return outcome.stderr_tail[-1]
        return failure_reason(
            f"the training script exited with code {outcome.exit_code}:", outcome.tail
        )

    def fail(self, status: str, reason: str) -> None:
        """Record the failure where SageMaker looks (unless the script did), end open runs."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        log.error("training failed: %s", reason)
        if self.opt_ml.failure_file.exists():
            log.info("%s exists (written by the script): kept", self.opt_ml.failure_file)
        else:
            self.opt_ml.write_failure(reason)
        if self.tracking is not None:
            try:
                self.tracking.end_open_runs(self.job_key, status, reason)
            except Exception as error:  # best effort: the job is failing already
                log.warning("could not end the job's MLflow runs: %s", error)

    def run(self) -> int:
        """Run the job; return the container's exit code (0 on success)."""
        with self.supervisor.signals():
            try:
                outcome = self.execute()
            except Terminated as stop:
                name = signal.Signals(stop.args[0]).name
                self.fail("KILLED", f"stopped by {name} before the training script finished")
                return 128 + stop.args[0]
            except TrainingError as error:
                self.fail("FAILED", str(error))
                return EXIT_FAILED
            except Exception as error:
                log.exception("unexpected error")
                self.fail("FAILED", f"unexpected error: {type(error).__name__}: {error}")
                return EXIT_FAILED
            if outcome.exit_code != 0:
                self.fail("FAILED", self.script_failure(outcome))
                return outcome.exit_code
        from sagemaker_training import files

        files.write_success_file()
        log.info("training job succeeded")
        return 0


def run_job(opt_ml: OptML, env: Mapping[str, str] | None = None) -> int:
    """Run the training job: the script sagemaker_program names, else the built-in one
    (settings from os.environ, or env); return the container's exit code."""
    return ScriptJob(opt_ml, env).run()
