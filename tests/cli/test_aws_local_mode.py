"""What `mlstack aws sagemaker-local` and `tune` read from the SageMaker SDK v3 without Docker:
a local job's name from the compose file v3 itself writes, why a job failed, and SOURCE_DIR /
ENTRY_POINT as v3's SourceCode."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.cli.aws.common import AwsScriptError, source_code
from mlstack.cli.aws.local_training import failure_reason, job_name_in
from mlstack.cli.settings import AwsSettings, load


def test_the_job_name_is_read_from_the_compose_file_v3_writes(tmp_path: Path) -> None:
    from sagemaker.train.local.local_container import _LocalContainer

    container = _LocalContainer(
        training_job_name="mlstack-local-20261204203015",
        instance_type="local_cpu",
        instance_count=1,
        image="mlstack/training:test",
        container_root=str(tmp_path),
        input_data_config=[],
        environment={"MLFLOW_EXPERIMENT_NAME": "e"},
        hyper_parameters={},
        container_entrypoint=None,
        container_arguments=None,
    )
    # What v3's train() does before `docker compose up`: the name goes into the environment.
    container._generate_compose_file(
        {**container.environment, "TRAINING_JOB_NAME": container.training_job_name}, []
    )
    assert job_name_in(tmp_path) == "mlstack-local-20261204203015"


def test_a_compose_file_without_a_job_name_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "docker-compose.yaml").write_text("services:\n  algo-1:\n    environment: []\n")
    with pytest.raises(AwsScriptError, match="no TRAINING_JOB_NAME"):
        job_name_in(tmp_path)


def settings(**values: str) -> AwsSettings:
    return load(AwsSettings, None, **values)


def test_source_code_names_requirements_only_when_there_are_some(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    code = source_code(settings(source_dir=str(tmp_path), entry_point="train.py"))
    assert (code.source_dir, code.entry_script, code.requirements) == (
        str(tmp_path.resolve()),
        "train.py",
        None,
    )
    (tmp_path / "requirements.txt").write_text("mlflow==2.12.1\n")
    code = source_code(settings(source_dir=str(tmp_path), entry_point="train.py"))
    assert code.requirements == "requirements.txt"  # v3 installs it only when named
    assert source_code(settings()) is None  # the built-in model


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"entry_point": "train.py"}, "set both SOURCE_DIR"),
        ({"source_dir": "."}, "set both SOURCE_DIR"),
        ({"source_dir": ".", "entry_point": "missing.py"}, "missing.py is not a file"),
    ],
)
def test_source_code_refuses_half_a_script(values: dict[str, str], message: str) -> None:
    with pytest.raises(AwsScriptError, match=message):
        source_code(settings(**values))


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        # The image's own (built-in job, script mode): the last line of the traceback.
        ("Traceback (most recent call last):\n  ...\nValueError: no rows in train\n",
         "ValueError: no rows in train"),
        # v3's driver: the traceback of the script's exit, as the SDK writes it.
        ("Traceback (most recent call last):\n  File ...\nsubprocess.CalledProcessError: "
         "Command '['/opt/venv/bin/python3', 'train.py']' returned non-zero exit status 3.\n",
         "the script exited with status 3"),
        # v3's driver's note when it knows nothing: it points at CloudWatch.
        ("Training Execution failed. For more details, see CloudWatch logs at "
         "'aws/sagemaker/TrainingJobs'.\nTrainingJob - mlstack-local-20261204203015", ""),
        ("", ""),
    ],
)  # fmt: skip
def test_the_failure_reason_is_the_jobs_own(tmp_path: Path, written: str, reason: str) -> None:
    (tmp_path / "algo-1" / "output").mkdir(parents=True)
    (tmp_path / "algo-1" / "output" / "failure").write_text(written)
    assert failure_reason(tmp_path) == reason
