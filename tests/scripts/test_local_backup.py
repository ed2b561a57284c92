"""scripts/local_backup.py pieces that need no Docker (the round trip: tests/compose/)."""

from pathlib import Path

import local_backup
import pytest
from local_backup import BackupError, bucket_of, read_env


def test_bucket_comes_from_the_artifacts_destination() -> None:
    assert (
        bucket_of({"ARTIFACTS_DESTINATION": "s3://team-bucket/mlflow/artifacts"}) == "team-bucket"
    )
    assert bucket_of({}) == "mlflow"


def test_env_file_is_read_and_its_absence_explained(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\nDB_NAME=tracking\nMLFLOW_AUTH_DB_NAME=auth\n\n")
    assert read_env(env) == {"DB_NAME": "tracking", "MLFLOW_AUTH_DB_NAME": "auth"}
    with pytest.raises(BackupError, match="make local-up"):
        read_env(tmp_path / "missing")


def test_restore_of_a_folder_that_is_no_backup_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = tmp_path / ".env"
    env.write_text("DB_NAME=mlflow\n")
    with pytest.raises(SystemExit) as exited:
        local_backup.main(["--env-file", str(env), "restore", str(tmp_path)])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        f"local_backup: error: {tmp_path} holds no manifest.json: "
        "give a folder `make local-backup` wrote\n"
    )
