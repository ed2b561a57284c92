"""The product's front door, end to end, through the Makefile's targets.

A stack of its own (compose project, ports, .env in a temporary directory), so
a developer's running `mlstack` stack is never touched: up, train, tune,
promote, serve, predict, look at the UI in a real browser, down while a job
runs, up again with everything still there, a second stack beside it that `down` stops
alone, clean; then up with access control off.
Access control is on by default: the test logs in as the admin `make local-up` wrote
into .env, as the Makefile's targets do.

One stack serves the module; each test brings it to the state it needs (fixtures `up` and
`trained`), so any test also runs alone: in file order the preconditions already hold and
cost nothing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import mlflow
import pandas as pd
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlstack.cli.local.stack import free_port_block
from support.images import ROOT, read_env_file
from support.login_proxy import logged_in_proxy
from support.metrics import assert_metrics_match
from support.ports import free_port
from support.stack import point_mlflow_at
from support.waiting import wait_until

pytestmark = pytest.mark.docker
EXPERIMENT = "e2e-diabetes"
MODEL = "e2e-diabetes-rf"
# What the test gives make for its stack; a command typed by hand has none of them.
STACK_VARIABLES = ("COMPOSE_PROJECT", "ENV_FILE", "MLFLOW_PORT", "MINIO_CONSOLE_PORT")
STACK_VARIABLES += ("MINIO_PORT", "SERVE_PORT", "EXPERIMENT_NAME", "MODEL_NAME")
TEST_CSV = ROOT / "data" / "diabetes" / "test" / "test.csv"  # what `make data` writes


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

    @property
    def env(self) -> dict[str, str]:
        return read_env_file(Path(self.variables["ENV_FILE"]))

    @property
    def admin(self) -> tuple[str, str]:
        return self.env["MLFLOW_AUTH_ADMIN_USERNAME"], self.env["MLFLOW_AUTH_ADMIN_PASSWORD"]

    def client(self) -> MlflowClient:
        """A client logged in as the stack's admin (MLflow reads these variables)."""
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = self.admin
        return MlflowClient(tracking_uri=self.tracking_uri)

    def container_env(self, service: str) -> dict[str, str]:
        """The environment Docker gave one of the stack's services."""
        (container,) = docker.from_env().containers.list(
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            }
        )
        return dict(item.partition("=")[::2] for item in container.attrs["Config"]["Env"])

    def search_status(self) -> int | None:
        """An anonymous experiments search: 401 up with access control, 200 up without it,
        None when nothing answers."""
        search = f"{self.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
        try:
            return requests.get(search, timeout=10).status_code
        except requests.RequestException:
            return None

    def has_champion(self) -> bool:
        """Whether MODEL has a version aliased champion (train, tune and promote have run)."""
        try:
            self.client().get_model_version_by_alias(MODEL, "champion")
        except MlflowException:
            return False
        return True


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = f"mlstack-e2e-{secrets.token_hex(3)}"
    env_file = tmp_path_factory.mktemp("stack") / ".env"
    variables = {
        "COMPOSE_PROJECT": project,
        "ENV_FILE": str(env_file),
        "MLFLOW_PORT": str(free_port()),
        "MINIO_CONSOLE_PORT": str(free_port()),
        "MINIO_PORT": str(free_port()),
        "SERVE_PORT": str(free_port()),
        "EXPERIMENT_NAME": EXPERIMENT,
        "MODEL_NAME": MODEL,
    }
    running = Stack(project=project, variables=variables)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    try:
        yield running
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
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


@pytest.fixture
def up(stack: Stack) -> Stack:
    """The stack up with access control on, as `make local-up` leaves it by default."""
    if stack.search_status() != 401:
        stack.make("local-up")
    return stack


@pytest.fixture
def trained(up: Stack) -> Stack:
    """The stack with a training run, a tuning and a champion version of MODEL, as
    test_02 leaves it (made here when a test that needs them runs without it)."""
    if not up.has_champion():
        up.make("local-train", N_ESTIMATORS="30")
        up.make("local-hpo", HPO_JOBS="3", HPO_PARALLEL="2")
        up.make("local-promote")
    return up


@pytest.fixture
def served(trained: Stack) -> Stack:
    """The champion behind `make local-serve`, as test_02 leaves it."""
    try:
        ping = f"http://127.0.0.1:{trained.variables['SERVE_PORT']}/ping"
        serving = requests.get(ping, timeout=2).status_code == 200
    except requests.RequestException:
        serving = False
    if not serving:
        trained.make("local-serve")
    return trained


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
    assert "`mlstack local login` prints the password" in out
    env_file = Path(stack.variables["ENV_FILE"])
    assert "=__generate__" not in env_file.read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    # The stack is its env file: its name and ports are recorded there.
    recorded = read_env_file(env_file)
    for name in (
        "COMPOSE_PROJECT",
        "MLFLOW_PORT",
        "MINIO_CONSOLE_PORT",
        "SERVE_PORT",
        "MINIO_PORT",
    ):
        assert recorded[name] == stack.variables[name]
    stack.make("local-up")
    assert requests.get(f"{stack.tracking_uri}/health", timeout=5).text == "OK"


@pytest.mark.usefixtures("up")
def test_01b_access_control_is_on_and_secrets_reach_only_their_services(stack: Stack) -> None:
    search = f"{stack.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 401
    ui = requests.get(f"{stack.tracking_uri}/", timeout=10)
    assert ui.status_code == 401 and ui.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(search, auth=stack.admin, timeout=10).status_code == 200
    # A refused login says where the right one is, to a user's own MLflow client too.
    hint = (
        "`mlstack local login` (make local-login) prints this server's URI and its admin's login."
    )
    assert requests.get(search, auth=("admin", "wrong"), timeout=10).text.endswith(hint)
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "admin", "no"
    with pytest.raises(MlflowException, match="mlstack local login"):
        MlflowClient(tracking_uri=stack.tracking_uri).search_experiments()
    exports = dict(
        shlex.split(line.removeprefix("export "))[0].split("=", 1)
        for line in stack.make("local-login").splitlines()
    )
    assert exports == {
        "MLFLOW_TRACKING_URI": stack.tracking_uri,
        "MLFLOW_TRACKING_USERNAME": stack.admin[0],
        "MLFLOW_TRACKING_PASSWORD": stack.admin[1],
    }
    env = stack.env
    server = stack.container_env("tracking-server")
    assert server["AWS_ACCESS_KEY_ID"] == env["MINIO_MLFLOW_USER"]
    assert server["AWS_SECRET_ACCESS_KEY"] == env["MINIO_MLFLOW_PASSWORD"]
    for secret in ("MINIO_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"):
        assert env[secret] not in server.values(), f"the tracking server has {secret}"
    assert env["MINIO_ROOT_PASSWORD"] not in stack.container_env("mysql").values()
    assert env["MYSQL_ROOT_PASSWORD"] not in stack.container_env("minio").values()


@pytest.mark.usefixtures("up")
def test_02_train_tune_promote_serve_predict(stack: Stack) -> None:
    runs_before = {r.info.run_id for r in runs_of(stack)}
    out = stack.make("local-train", N_ESTIMATORS="30")
    # Links the user opens: this machine's address, never the one inside the network.
    assert f"run: {stack.tracking_uri}/#/experiments/" in out
    assert "tracking-server:5000" not in out
    out = stack.make("local-hpo", HPO_JOBS="3", HPO_PARALLEL="2")
    assert "[3/3]" in out and f"registered {MODEL} version" in out
    assert f"best run: {stack.tracking_uri}/#/experiments/" in out
    seed = re.search(r"seed (\d+) \(TUNING_SEED=(\d+) repeats this search\)", out)
    assert seed and seed.group(1) == seed.group(2)
    out = stack.make("local-promote")
    assert f"{MODEL}@champion -> version" in out and "AE-at-50th-percentile" in out
    stack.make("local-serve")
    out = stack.make("local-predict")
    prediction = float(out.split("prediction:")[1].split()[0])
    # The champion's own prediction of the reference's request (the first test row).
    champion = f"models:/{MODEL}@champion"
    stack.client()  # logs MLflow in as the admin
    with pytest.MonkeyPatch.context() as patch:
        point_mlflow_at(patch, stack.tracking_uri)
        model = mlflow.pyfunc.load_model(champion)
        first_row = pd.read_csv(TEST_CSV).drop(columns="progression").iloc[[0]]
        payload = first_row.to_json(orient="split")
        assert prediction == model.predict(pd.DataFrame(**json.loads(payload)))[0]
        # Promotion picked the version whose run has the least AE-at-50th-percentile, and
        # that run's metrics are its model's errors on the held-out set, worked out here.
        client = stack.client()
        versions = client.search_model_versions(f"name='{MODEL}'")
        metrics = {v.version: client.get_run(v.run_id).data.metrics for v in versions}
        chosen = metrics[client.get_model_version_by_alias(MODEL, "champion").version]
        objective = "AE-at-50th-percentile"
        assert chosen[objective] == min(m[objective] for m in metrics.values() if objective in m)
        assert_metrics_match(chosen, champion, TEST_CSV)

    runs = [r for r in runs_of(stack) if r.info.run_id not in runs_before]
    tuning = [r for r in runs if r.data.tags.get("mlstack.kind") == "tuning"]
    assert len(tuning) == 1 and tuning[0].info.status == "FINISHED"
    assert tuning[0].data.params["seed"] == seed.group(1)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tuning[0].info.run_id]
    assert len(children) == 3
    assert all("AE-at-50th-percentile" in r.data.metrics for r in children)


@pytest.mark.usefixtures("served")
def test_02b_monitor_flags_the_shifted_features_and_logs_its_report(
    stack: Stack, tmp_path: Path
) -> None:
    out = stack.make("local-monitor")
    # make local-monitor shifts the first two features with many values: age and bmi.
    flagged = [line.split()[0] for line in out.splitlines() if " DRIFT " in line]
    assert [name for name in flagged if name != "prediction"] == ["age", "bmi"], out
    folder = ROOT / "build" / "monitor" / "report"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["drifted_features"] == ["age", "bmi"]
    assert summary["schema"] == {"missing": [], "unexpected": []}
    # Every row sent has its target (local-predict's one request has none).
    assert summary["quality"]["rows"] == summary["quality"]["labelled_rows"] > 0
    client = stack.client()
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")} == {
        "monitoring/report.html",
        "monitoring/summary.json",
    }
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["mlstack.monitor.last_run_id"] == run.info.run_id
    assert run.data.tags["mlstack.monitor.model_version"] == champion.version

    # The report as a person sees it, in a real browser: the verdict and the plots.
    page = (folder / "report.html").as_uri()
    dom = " ".join(browse(page, tmp_path / "dom", "--dump-dom").split())  # as it is shown
    assert "Drift in 2 of 10 features: age, bmi" in dom
    assert dom.count("data:image/png;base64,") == 2
    shot = tmp_path / "monitoring-report.png"
    browse(page, tmp_path / "shot", "--window-size=1100,1500", f"--screenshot={shot}")
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 200, "the report rendered (nearly) blank"


@pytest.mark.usefixtures("trained")
def test_03_ui_shows_experiment_runs_and_model(stack: Stack, tmp_path: Path) -> None:
    experiment = stack.client().get_experiment_by_name(EXPERIMENT)
    page = f"/#/experiments/{experiment.experiment_id}/runs"
    assert requests.get(stack.tracking_uri + page, timeout=10).status_code == 401  # log in first
    with logged_in_proxy(stack.tracking_uri, stack.admin) as browser_view:
        runs_page, model_page = browser_view + page, f"{browser_view}/#/models/{MODEL}"
        dom = browse(runs_page, tmp_path / "a", "--dump-dom")
        assert EXPERIMENT in dom
        assert "hpo-" in dom and "train-" in dom
        model_dom = browse(model_page, tmp_path / "b", "--dump-dom")
        assert MODEL in model_dom and "champion" in model_dom
        for name, url in (("runs", runs_page), ("model", model_page)):
            shot = tmp_path / f"mlflow-ui-{name}.png"
            browse(url, tmp_path / name, "--window-size=1400,900", f"--screenshot={shot}")
            assert shot.stat().st_size > 10_000


@pytest.mark.usefixtures("trained")
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
        wait_until(
            lambda: any(
                r.info.status == "RUNNING" and r.info.run_id not in run_ids_before
                for r in runs_of(stack)
            ),
            timeout=120,
            message="the training job never started a run",
        )
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


def mlstack(env_file: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    """`mlstack --env-file ENV ARGS` as typed by hand, the stack's own variables not set."""
    env = {k: v for k, v in os.environ.items() if k not in STACK_VARIABLES}
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mlstack"), "--env-file", str(env_file), *args],
        cwd=ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def refused(done: subprocess.CompletedProcess) -> str:
    """The one line a refused command printed."""
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    return line


@pytest.mark.usefixtures("up")
def test_04b_a_second_stack_runs_beside_and_down_stops_only_its_own(
    stack: Stack, tmp_path: Path
) -> None:
    first_env = Path(stack.variables["ENV_FILE"]).resolve()
    second_env = tmp_path / ".env.second"
    second = f"{stack.project}-second"
    port = free_port_block()
    taken = refused(mlstack(tmp_path / ".env.taken", "local", "up", "--name", stack.project))
    assert taken == (
        f"mlstack: error: stack {stack.project!r} was started from {first_env}, not "
        f"{tmp_path / '.env.taken'}: nothing started; act on it with its own file (mlstack "
        f"--env-file {first_env} local ...), or give this stack another name (mlstack local "
        "up --name NAME --port PORT)"
    )
    busy = refused(
        mlstack(
            second_env, "local", "up", "--name", second, "--port", stack.variables["MLFLOW_PORT"]
        )
    )
    assert busy.startswith(
        f"mlstack: error: MLFLOW_PORT={stack.variables['MLFLOW_PORT']} is taken by stack "
        f"{stack.project!r} of {first_env}: start this stack on other ports, e.g. mlstack local "
        f"up --name {second} --port "
    )
    assert not second_env.exists()  # nothing written for a stack that did not start
    started = time.monotonic()
    try:
        up = mlstack(second_env, "local", "up", "--name", second, "--port", str(port))
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"second stack up in {time.monotonic() - started:.0f} s")
        second_uri = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
        assert requests.get(second_uri, timeout=10).status_code == 401
        # `down` typed by hand with the other stack's name in the environment: refused.
        accident = refused(mlstack(first_env, "local", "down", COMPOSE_PROJECT=second))
        assert accident.startswith(
            f"mlstack: error: stack {second!r} was started from {second_env}, not {first_env}: "
            "nothing stopped;"
        )
        down = mlstack(second_env, "local", "down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert (
            docker.from_env().containers.list(
                filters={"label": f"com.docker.compose.project={second}"}
            )
            == []
        )
        assert stack.search_status() == 401  # the first stack is still up
    finally:
        mlstack(second_env, "local", "clean")


@pytest.mark.usefixtures("up")
def test_05_local_clean_removes_the_data(stack: Stack) -> None:
    stack.make("local-clean")
    volumes = docker.from_env().volumes.list(
        filters={"label": f"com.docker.compose.project={stack.project}"}
    )
    assert volumes == []


def test_06_access_control_off_lets_anyone_in_and_withholds_its_secrets(stack: Stack) -> None:
    stack.make("local-up", MLFLOW_AUTH_ENABLED="false")
    search = f"{stack.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 200
    server = stack.container_env("tracking-server")
    assert server["MLFLOW_AUTH_ENABLED"] == "false"
    assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in server
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" not in server
    stack.make("local-clean", MLFLOW_AUTH_ENABLED="false")
