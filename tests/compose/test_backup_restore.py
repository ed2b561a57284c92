"""`make local-backup` / `make local-restore`: a backup restored into a fresh stack.

A stack of its own (compose project, ports, .env in a temporary directory): data
logged, backed up, the stack deleted with its volumes and its .env (so the new one
has other passwords), started fresh, restored; then runs, metric histories and
artifact bytes are compared with what was logged (the restore gives the restored auth
database's admin the new stack's password). Then `make local-convert-collation`
on that stack, which must leave every table utf8mb4_bin and the data as it was.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from support.images import ROOT, read_env_file
from support.ports import free_port

pytestmark = pytest.mark.docker
EXPERIMENT = "backup-restore"


def make(variables: dict[str, str], *targets: str, **extra: str) -> subprocess.CompletedProcess:
    """Run make targets with the stack's variables; return the finished process."""
    return subprocess.run(
        ["make", "--no-print-directory", *targets]
        + [f"{k}={v}" for k, v in {**variables, **extra}.items()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def make_ok(variables: dict[str, str], *targets: str, **extra: str) -> str:
    done = make(variables, *targets, **extra)
    assert done.returncode == 0, f"make {' '.join(targets)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def variables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    values = {
        "COMPOSE_PROJECT": f"mlstack-backup-{secrets.token_hex(3)}",
        "ENV_FILE": str(tmp_path_factory.mktemp("stack") / ".env"),
        "MLFLOW_PORT": str(free_port()),
        "MINIO_CONSOLE_PORT": str(free_port()),
        "MINIO_PORT": str(free_port()),
    }
    try:
        yield values
    finally:
        make(values, "local-clean")


def log_in(variables: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients log in as the admin of the stack's .env (access control is on)."""
    env = read_env_file(Path(variables["ENV_FILE"]))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", env["MLFLOW_AUTH_ADMIN_USERNAME"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", env["MLFLOW_AUTH_ADMIN_PASSWORD"])


def log_runs(client: MlflowClient, workdir: Path) -> dict[str, dict]:
    """Two runs with params, a metric history and a binary artifact; what was logged."""
    experiment_id = client.create_experiment(EXPERIMENT)
    logged = {}
    for index in range(2):
        run_id = client.create_run(experiment_id).info.run_id
        client.log_param(run_id, "index", str(index))
        for step in range(4):
            client.log_metric(run_id, "loss", 1.0 / (step + 1) + index, step=step)
        blob = workdir / f"blob-{index}.bin"
        blob.write_bytes(secrets.token_bytes(50_000))
        client.log_artifact(run_id, str(blob), artifact_path="data")
        client.set_terminated(run_id)
        logged[run_id] = {"blob": blob.read_bytes(), "index": index}
    return logged


def assert_restored(client: MlflowClient, logged: dict, histories: dict, into: Path) -> None:
    """Runs, params, metric histories and artifact bytes are what was logged."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert {r.info.run_id for r in runs} == set(logged)
    for run_id, expected in logged.items():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params == {"index": str(expected["index"])}
        history = [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")]
        assert sorted(history) == sorted(histories[run_id])
        path = f"data/blob-{expected['index']}.bin"
        local = client.download_artifacts(run_id, path, str(into / run_id))
        assert Path(local).read_bytes() == expected["blob"]


def test_backup_restored_into_a_fresh_stack_gives_back_runs_metrics_and_artifacts(
    variables: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    uri = f"http://127.0.0.1:{variables['MLFLOW_PORT']}"
    make_ok(variables, "local-up")
    log_in(variables, monkeypatch)
    logged = log_runs(MlflowClient(uri), tmp_path)
    histories = {
        run_id: [(m.step, m.value) for m in MlflowClient(uri).get_metric_history(run_id, "loss")]
        for run_id in logged
    }

    out = make_ok(variables, "local-backup", BACKUP_ROOT=str(tmp_path / "backups"))
    backup = Path(out.split("backup complete: ", 1)[1].split()[0])
    manifest = json.loads((backup / "manifest.json").read_text())
    assert set(manifest["databases"]) == {"mlflow", "mlflow_auth"}
    assert manifest["objects"] >= 2 and (backup / "mysql" / "mlflow.sql").stat().st_size > 0

    refused = make(variables, "local-restore", BACKUP=str(backup))
    assert refused.returncode != 0
    assert "mlstack: error: this overwrites the stack's data: run again with CONFIRM=yes" in (
        refused.stderr
    )
    assert "replace database mlflow" in refused.stdout

    make_ok(variables, "local-clean")
    Path(variables["ENV_FILE"]).unlink()  # the fresh stack gets passwords of its own
    make_ok(variables, "local-up")
    log_in(variables, monkeypatch)
    assert MlflowClient(uri).get_experiment_by_name(EXPERIMENT) is None

    out = make_ok(variables, "local-restore", BACKUP=str(backup), CONFIRM="yes")
    assert "restore complete" in out
    assert_restored(MlflowClient(uri), logged, histories, tmp_path / "restored")

    out = make_ok(variables, "local-convert-collation")
    assert "utf8mb4_bin" in out
    assert "every table is utf8mb4 / utf8mb4_bin" in make_ok(variables, "local-check-collation")
    assert_restored(MlflowClient(uri), logged, histories, tmp_path / "converted")
