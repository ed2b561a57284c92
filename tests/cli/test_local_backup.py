"""`mlstack local backup/restore` pieces that need no Docker (the round trip: tests/compose/)."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from mlstack.cli.local.backup import BackupError, bucket_of, require_env_file
from mlstack.cli.main import cli
from mlstack.cli.settings import LocalSettings, load


def test_bucket_comes_from_the_artifacts_destination() -> None:
    assert bucket_of("s3://team-bucket/mlflow/artifacts") == "team-bucket"
    assert bucket_of("") == "mlflow"


def test_env_file_is_read_and_its_absence_explained(tmp_path: Path, monkeypatch) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\nDB_NAME=tracking\nMLFLOW_AUTH_DB_NAME=auth\n\n")
    for name in ("DB_NAME", "MLFLOW_AUTH_DB_NAME", "ARTIFACTS_DESTINATION"):
        monkeypatch.delenv(name, raising=False)
    settings = load(LocalSettings, env)
    assert (settings.db_name, settings.mlflow_auth_db_name) == ("tracking", "auth")
    assert bucket_of(settings.artifacts_destination) == "mlflow"
    with pytest.raises(BackupError, match="make local-up"):
        require_env_file(tmp_path / "missing")


def test_restore_of_a_folder_that_is_no_backup_fails_in_one_line(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("DB_NAME=mlflow\n")
    result = CliRunner().invoke(cli, ["--env-file", str(env), "local", "restore", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == (
        f"mlstack: error: {tmp_path} holds no manifest.json: "
        f"give a folder `make local-backup ENV_FILE={env}` wrote\n"
    )
