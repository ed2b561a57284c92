"""The product's front door, end to end, through the Makefile's targets.

A stack of its own (compose project, ports, .env in a temporary directory), so
a developer's running `mlstack` stack is never touched: up, train, tune,
promote, serve, predict, look at the UI in a real browser, down while a job
runs, up again with everything still there, clean.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
import requests
from mlflow import MlflowClient

from support.images import ROOT
from support.ports import free_port

pytestmark = pytest.mark.docker
EXPERIMENT = "e2e-diabetes"
MODEL = "e2e-diabetes-rf"
SCREENSHOTS = ROOT / "build" / "screenshots"


@dataclass
class Stack:
    """A running local stack of the test's own, driven by make."""

    project: str
    variables: dict[str, str]

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.variables['MLFLOW_PORT']}"

    def make(self, *targets: str, timeout: float = 600, **extra: str) -> str:
        """Run make targets with the stack's variables; return their output; fail loudly."""
        assignments = [f"{k}={v}" for k, v in {**self.variables, **extra}.items()]
        done = subprocess.run(
            ["make", "--no-print-directory", *targets, *assignments],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"make {' '.join(targets)} failed:\n{done.stdout}{done.stderr}"
        return done.stdout

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = f"mlstack-e2e-{secrets.token_hex(3)}"
    env_file = tmp_path_factory.mktemp("stack") / ".env"
    variables = {
        "COMPOSE_PROJECT": project,
        "ENV_FILE": str(env_file),
        "MLFLOW_PORT": str(free_port()),
        "MINIO_CONSOLE_PORT": str(free_port()),
        "SERVE_PORT": str(free_port()),
        "EXPERIMENT_NAME": EXPERIMENT,
        "MODEL_NAME": MODEL,
    }
    running = Stack(project=project, variables=variables)
    try:
        yield running
    finally:
        subprocess.run(
            [
                "make",
                "--no-print-directory",
                "local-clean",
                *[f"{k}={v}" for k, v in variables.items()],
            ],
            cwd=ROOT,
            capture_output=True,
            check=False,
            timeout=300,
        )


def runs_of(stack: Stack) -> list:
    client = stack.client()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def browse(url: str, user_data: Path, *flags: str) -> str:
    """Load url in headless Chromium (Debian's package); return what it printed."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: apt-get install -y chromium"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={user_data}",
            "--virtual-time-budget=20000",
            *flags,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout


def test_01_local_up_twice_is_harmless(stack: Stack) -> None:
    out = stack.make("local-up")
    assert f"http://127.0.0.1:{stack.variables['MLFLOW_PORT']}" in out
    assert "=__generate__" not in Path(stack.variables["ENV_FILE"]).read_text()
    stack.make("local-up")
    assert requests.get(f"{stack.tracking_uri}/health", timeout=5).text == "OK"


def test_02_train_tune_promote_serve_predict(stack: Stack) -> None:
    stack.make("local-train", N_ESTIMATORS="30")
    out = stack.make("local-hpo", HPO_JOBS="3", HPO_PARALLEL="2")
    assert "[3/3]" in out and f"registered {MODEL} version" in out
    out = stack.make("local-promote")
    assert f"{MODEL}@champion -> version" in out
    stack.make("local-serve")
    out = stack.make("local-predict")
    prediction = float(out.split("prediction:")[1].split()[0])
    assert 0 < prediction < 400  # diabetes progression lies in 25..346

    runs = runs_of(stack)
    tuning = [r for r in runs if r.data.tags.get("mlstack.kind") == "tuning"]
    assert len(tuning) == 1 and tuning[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tuning[0].info.run_id]
    assert len(children) == 3
    assert all("AE-at-50th-percentile" in r.data.metrics for r in children)


def test_03_ui_shows_experiment_runs_and_model(stack: Stack, tmp_path: Path) -> None:
    experiment = stack.client().get_experiment_by_name(EXPERIMENT)
    runs_page = f"{stack.tracking_uri}/#/experiments/{experiment.experiment_id}/runs"
    dom = browse(runs_page, tmp_path / "a", "--dump-dom")
    assert EXPERIMENT in dom
    assert "hpo-" in dom and "train-" in dom
    model_dom = browse(f"{stack.tracking_uri}/#/models/{MODEL}", tmp_path / "b", "--dump-dom")
    assert MODEL in model_dom and "champion" in model_dom
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, url in (("runs", runs_page), ("model", f"{stack.tracking_uri}/#/models/{MODEL}")):
        shot = SCREENSHOTS / f"mlflow-ui-{name}.png"
        browse(url, tmp_path / name, "--window-size=1400,900", f"--screenshot={shot}")
        assert shot.stat().st_size > 10_000


def test_04_down_while_training_then_up_keeps_everything(stack: Stack, tmp_path: Path) -> None:
    client = stack.client()
    champion_before = client.get_model_version_by_alias(MODEL, "champion").version
    versions_before = {v.version for v in client.search_model_versions(f"name='{MODEL}'")}
    run_ids_before = {r.info.run_id for r in runs_of(stack)}

    assignments = [f"{k}={v}" for k, v in stack.variables.items()]
    job = subprocess.Popen(
        ["make", "--no-print-directory", "local-train", "N_ESTIMATORS=3000", *assignments],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(
            r.info.status == "RUNNING" and r.info.run_id not in run_ids_before
            for r in runs_of(stack)
        ):
            assert time.monotonic() < deadline, "the training job never started a run"
            time.sleep(0.5)
        stack.make("local-down")
    finally:
        job.wait(timeout=120)

    stack.make("local-up")
    runs = runs_of(stack)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert run_ids_before <= {r.info.run_id for r in runs}
    assert {v.version for v in client.search_model_versions(f"name='{MODEL}'")} == versions_before
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion_before
    champion_run = client.get_model_version_by_alias(MODEL, "champion").run_id
    plots = {a.path for a in client.list_artifacts(champion_run, "plots")}
    assert plots == {"plots/predicted_vs_actual.png"}
    plot = client.download_artifacts(champion_run, "plots/predicted_vs_actual.png", str(tmp_path))
    assert Path(plot).read_bytes().startswith(b"\x89PNG")


def test_05_local_clean_removes_the_data(stack: Stack) -> None:
    stack.make("local-clean")
    volumes = docker.from_env().volumes.list(
        filters={"label": f"com.docker.compose.project={stack.project}"}
    )
    assert volumes == []
