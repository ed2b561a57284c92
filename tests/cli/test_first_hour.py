"""A newcomer's first hour: each ordinary mistake answered in ONE line that says what is wrong
and what to do, in the words the user typed, and the same line listed in
docs/troubleshooting.md with its fix.

The situations are numbered as docs/troubleshooting.md numbers them. Those that need the
Docker engine reuse the session's servers and images (a container of a few seconds at most);
the second stack beside the first is in tests/compose/test_local_stack.py, whose stack it
reuses, as are the run links, the seed and the 401 hint of a real stack.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from mlflow import MlflowClient

from mlstack.cli.links import PublicLinks, public
from mlstack.cli.local.endpoint import last_error_line
from mlstack.cli.local.hpo import sample_grid, search_seed
from mlstack.cli.local.login import login_lines
from mlstack.cli.local.promote import decide
from mlstack.cli.main import cli
from mlstack.cli.settings import ALL_SETTINGS, LocalSettings, load
from mlstack.core.ports import free_port
from mlstack.core.settings import variables
from support.data import write_channels
from support.images import ROOT
from support.stack import point_mlflow_at

TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the shell, and MLflow's credentials restored after the test (the loop
    commands export them for MLflow's client in their process)."""
    for name in set().union(*(variables(cls) for cls in ALL_SETTINGS)) | {"ENV_FILE"}:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def mlstack(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def one_line(result: Result, status: int = 1) -> str:
    """The single line a failed command printed on stderr, its `mlstack: error: ` cut."""
    assert result.exit_code == status, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mlstack: error: "), lines[0]
    return lines[0].removeprefix("mlstack: error: ")


def documented(fragment: str) -> None:
    """The troubleshooting page lists the message (a stable part of it)."""
    assert fragment in TROUBLESHOOTING.read_text(), f"docs/troubleshooting.md lacks {fragment!r}"


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    """A stack's env file as `mlstack local up` writes it, without the stack."""
    path = tmp_path / ".env"
    path.write_text(
        "COMPOSE_PROJECT=firsthour\nMLFLOW_PORT=15600\nSERVE_PORT=15602\n"
        "MLFLOW_AUTH_ADMIN_USERNAME=admin\nMLFLOW_AUTH_ADMIN_PASSWORD=from-the-env-file\n"
    )
    return path


# --- 1. a bad or misspelt variable ------------------------------------------------------


def test_1_a_bad_value_names_the_variable_the_user_typed(env_file: Path) -> None:
    result = mlstack("--env-file", str(env_file), "local", "train", env={"N_ESTIMATORS": "many"})
    assert one_line(result) == "N_ESTIMATORS must be a whole number, got 'many'"
    result = mlstack("--env-file", str(env_file), "local", "hpo", env={"HPO_JOBS": "0"})
    assert one_line(result) == "HPO_JOBS must be at least 1, got 0"
    result = mlstack("--env-file", str(env_file), "local", "hpo", "--parallel", "0")
    assert one_line(result) == "--parallel must be at least 1, got 0"
    documented("N_ESTIMATORS must be a whole number, got 'many'")


def test_1_the_makefile_hands_the_variables_over_as_they_are_typed() -> None:
    """make passes no option for a setting: mlstack reads (and names) the variable itself."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "local-train", "local-hpo", "N_ESTIMATORS=many"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    calls = [line for line in done.stdout.splitlines() if "/mlstack " in line]
    assert calls[-2:] == [
        ".venv/bin/mlstack --env-file .env local train",
        ".venv/bin/mlstack --env-file .env local hpo",
    ]


def test_1_a_misspelt_variable_is_reported_not_ignored(env_file: Path) -> None:
    result = mlstack("--env-file", str(env_file), "local", "train", env={"N_ESTIMATOR": "50"})
    assert one_line(result) == (
        "N_ESTIMATOR is not one of mlstack's settings: did you mean N_ESTIMATORS? "
        "(rename it, or unset it)"
    )
    env_file.write_text(env_file.read_text() + "MIN_SAMPLE_LEAF=2\n")
    result = mlstack("--env-file", str(env_file), "local", "train")
    assert one_line(result) == (
        f"MIN_SAMPLE_LEAF in {env_file} is not one of mlstack's settings: did you mean "
        "MIN_SAMPLES_LEAF? (rename it there, or unset it)"
    )
    documented("is not one of mlstack's settings: did you mean")


def test_1_other_tools_variables_are_left_alone(env_file: Path) -> None:
    """The environment holds much that is not ours: only near-misses of ours are reported."""
    others = {"AWS_DEFAULT_PROFILE": "x", "COMPOSE_PROJECT_NAME": "x", "HOSTNAME": "x"}
    result = mlstack("--env-file", str(env_file), "local", "train", "--help", env=others)
    assert result.exit_code == 0, result.output


# --- 2. serving before anything is promoted ---------------------------------------------


def test_2_serve_without_a_champion_says_to_promote(
    env_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_mlflow_at(monkeypatch, None)
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(registry).search_experiments()  # made before: its migrations log
    result = mlstack("--env-file", str(env_file), "local", "--tracking-uri", registry, "serve")
    assert one_line(result) == (
        f"diabetes-rf@champion does not exist at {registry}: tune and promote a model first "
        f"(make local-hpo ENV_FILE={env_file}, then make local-promote ENV_FILE={env_file}), "
        "or set MODEL_NAME"
    )
    documented("@champion does not exist at")


def test_2_a_container_that_stops_is_said_by_its_own_last_error_line() -> None:
    logs = (
        "2026-01-01 INFO mlstack.serving: starting\n"
        "mlstack-inference: error: cannot download MODEL_URI=models:/m@champion: "
        "RESOURCE_DOES_NOT_EXIST; check MLFLOW_TRACKING_URI, the model name and alias\n"
    )
    assert last_error_line(logs).startswith("mlstack-inference: error: cannot download")
    documented("the endpoint mlstack-inference stopped: mlstack-inference: error:")


# --- 3. predict with nothing serving ----------------------------------------------------


def test_3_predict_with_the_endpoint_down_says_to_serve(env_file: Path, tmp_path: Path) -> None:
    data = write_channels(tmp_path / "data")
    port = free_port()
    result = mlstack(
        "--env-file", str(env_file), "local", "predict", "--data-dir", str(data),
        env={"SERVE_PORT": str(port)},
    )  # fmt: skip
    assert one_line(result) == (
        f"nothing answers at http://127.0.0.1:{port} (SERVE_PORT={port}): serve a model there "
        f"first (make local-serve ENV_FILE={env_file})"
    )
    documented("nothing answers at http://127.0.0.1:8080 (SERVE_PORT=8080)")


def test_3_the_loop_with_the_stack_down_says_to_start_it(env_file: Path) -> None:
    """Not MLflow's client retrying a refused connection for minutes: one line at once."""
    port = free_port()
    for command in ("promote", "serve"):
        started = time.monotonic()
        result = mlstack(
            "--env-file", str(env_file), "local", command, env={"MLFLOW_PORT": str(port)}
        )  # fmt: skip
        assert one_line(result) == (
            f"nothing answers at http://127.0.0.1:{port} (MLFLOW_PORT={port}): start the stack "
            f"first (make local-up ENV_FILE={env_file})"
        )
        assert time.monotonic() - started < 10
    documented("nothing answers at http://127.0.0.1:5000 (MLFLOW_PORT=5000)")


def test_3_down_without_its_env_file_stops_nothing(tmp_path: Path) -> None:
    missing = tmp_path / ".env"
    result = mlstack("--env-file", str(missing), "local", "down")
    assert one_line(result) == (
        f"{missing} is missing: no stack of it to stop (a stack started from another file: "
        "mlstack --env-file FILE local down)"
    )
    documented("is missing: no stack of it to stop")


# --- 4. logging in ------------------------------------------------------------------------


def test_4_login_prints_the_export_lines_and_the_ui(env_file: Path) -> None:
    result = mlstack("--env-file", str(env_file), "local", "login")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "export MLFLOW_TRACKING_URI=http://127.0.0.1:15600",
        "export MLFLOW_TRACKING_USERNAME=admin",
        "export MLFLOW_TRACKING_PASSWORD=from-the-env-file",
    ]
    assert "MLflow UI at http://127.0.0.1:15600 (log in as admin" in result.stderr
    written = env_file.parent / "mlflow.env"
    result = mlstack("--env-file", str(env_file), "local", "login", "--write", str(written))
    assert result.exit_code == 0 and written.stat().st_mode & 0o077 == 0
    assert "MLFLOW_TRACKING_PASSWORD=from-the-env-file\n" in written.read_text()
    auth_off = load(LocalSettings, env_file, mlflow_auth_enabled=False)
    assert [line.split("=")[0] for line in login_lines(auth_off)] == ["export MLFLOW_TRACKING_URI"]
    documented("mlstack local login")


def test_4_login_before_the_stack_exists_says_to_start_it(tmp_path: Path) -> None:
    missing = tmp_path / ".env"
    result = mlstack("--env-file", str(missing), "local", "login")
    assert one_line(result) == (
        f"{missing} is missing: start the stack with `make local-up ENV_FILE={missing}` first"
    )


@pytest.mark.docker
def test_4_a_refused_login_says_where_the_right_one_is(auth_server, tmp_path: Path) -> None:
    """The loop logs in as its stack's admin: a wrong password there is one line that names
    `mlstack local login`, not MLflow's traceback."""
    wrong = tmp_path / ".env"
    wrong.write_text("MLFLOW_AUTH_ADMIN_PASSWORD=not-the-admins-password\n")
    result = mlstack(
        "--env-file", str(wrong), "local", "--tracking-uri", auth_server.uri_from_host, "promote"
    )
    assert one_line(result) == (
        "the tracking server refused the login (401): check MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD; for a local stack, `mlstack local login` prints those of "
        "its env file"
    )
    documented("the tracking server refused the login (401)")


# --- 5. a second stack: tests/compose/test_local_stack.py; the refusals without Docker --


def test_5_an_env_file_holds_one_stack(env_file: Path, tmp_path: Path) -> None:
    example = tmp_path / ".env.example"
    example.write_text("COMPOSE_PROJECT=mlstack\n")
    result = mlstack(
        "--env-file", str(env_file), "local", "up", "--name", "newcomer", "--port", "15700",
        "--example", str(example),
    )  # fmt: skip
    assert one_line(result) == (
        f"{env_file} holds stack 'firsthour' (MLflow on port 15600): start it with "
        "`mlstack local up`, or give 'newcomer' a file of its own: export "
        "ENV_FILE=.env.newcomer, then mlstack local up --name newcomer --port 15700"
    )
    documented("holds stack 'mlstack' (MLflow on port 5000)")


def test_5_a_hint_names_the_stacks_env_file(tmp_path: Path) -> None:
    other = tmp_path / ".env.newcomer"
    other.write_text("COMPOSE_PROJECT=newcomer\n")
    result = mlstack("--env-file", str(other), "local", "predict", "--data-dir", str(tmp_path))
    assert one_line(result) == (
        f"{tmp_path / 'hyperparameters.json'} is missing: run `make data ENV_FILE={other}` first"
    )


# --- 6. links the user can open -----------------------------------------------------------


def test_6_run_links_use_the_address_this_machine_opens(capsys: pytest.CaptureFixture) -> None:
    line = "🏃 View run train-1 at: http://tracking-server:5000/#/experiments/1/runs/abc"
    assert public(line, "http://tracking-server:5000", "http://127.0.0.1:15600") == (
        "🏃 View run train-1 at: http://127.0.0.1:15600/#/experiments/1/runs/abc"
    )
    import sys

    PublicLinks(sys.stderr, "http://172.18.0.5:5000", "http://127.0.0.1:5000").write(
        "View run at: http://172.18.0.5:5000/#/experiments/2/runs/x\n"
    )
    assert capsys.readouterr().err == "View run at: http://127.0.0.1:5000/#/experiments/2/runs/x\n"


# --- 7. a new seed for each tuning; promote says why --------------------------------------


def test_7_each_tuning_has_a_new_seed_unless_one_is_asked() -> None:
    seeds = {search_seed(None) for _ in range(5)}
    assert len(seeds) > 1
    assert search_seed(1234) == 1234
    assert sample_grid(4, 1234) == sample_grid(4, 1234) != sample_grid(4, 4321)


@pytest.mark.parametrize(
    ("scored", "champion", "chosen", "why"),
    [
        ({1: 40.0, 2: 38.5}, None, 2, "-> version 2 (AE-at-50th-percentile 38.500, the lowest "),
        ({1: 40.0, 2: 38.5}, 1, 2, "-> version 2 (AE-at-50th-percentile 38.500, lower than "),
        ({1: 38.5, 2: 38.5}, 1, 1, "stays version 1 (AE-at-50th-percentile 38.500): version 2 "),
        ({1: 38.5, 2: 41.0}, 1, 1, "stays version 1 (AE-at-50th-percentile 38.500): no other "),
    ],
    ids=["first", "better", "tie", "worse"],
)
def test_7_promote_says_why_the_champion_moved_or_stayed(scored, champion, chosen, why) -> None:
    assert decide(scored, champion)[0] == chosen
    assert decide(scored, champion)[1].startswith(why)


def test_7_promote_keeps_a_tied_champion_in_a_real_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = f"sqlite:///{tmp_path / 'mlflow.db'}"
    point_mlflow_at(monkeypatch, registry)
    client = MlflowClient()
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri())
    client.create_registered_model("diabetes-rf")
    for objective in (41.0, 38.5, 38.5):  # versions 1, 2 and 3, each from a run that scored
        run = client.create_run(experiment).info.run_id
        client.log_metric(run, "AE-at-50th-percentile", objective)
        client.create_model_version("diabetes-rf", f"runs:/{run}/model", run_id=run)
    first = mlstack("local", "--tracking-uri", registry, "promote")
    again = mlstack("local", "--tracking-uri", registry, "promote")
    assert first.stdout.strip().startswith("diabetes-rf@champion -> version 2 (")
    assert again.stdout.strip() == (
        "diabetes-rf@champion stays version 2 (AE-at-50th-percentile 38.500): version 3 ties "
        "it, and the champion moves only for a lower AE-at-50th-percentile"
    )
    documented("the champion moves only for a lower AE-at-50th-percentile")


# --- 8. the inference image's start-up (unit tests: tests/serving/test_model_source.py) --


SILENT_SERVER = (
    "import socket, time\n"
    "server = socket.create_server(('0.0.0.0', 5000))\n"
    "held = [server.accept() for _ in range(64)]\n"
    "time.sleep(600)\n"
)  # takes each connection and never answers: MLflow's client would retry for minutes


@pytest.mark.docker
@pytest.mark.parametrize("case", ["server that never answers", "MLmodel not YAML"])
def test_8_the_inference_image_stops_in_one_line(
    inference_image: str, tmp_path: Path, case: str
) -> None:
    import docker

    client = docker.from_env()
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: [python_function\n")
    model.chmod(0o755)
    (model / "MLmodel").chmod(0o644)
    silent = None
    if case == "server that never answers":
        silent = client.containers.run(
            inference_image, entrypoint=["python", "-c", SILENT_SERVER], detach=True
        )
        silent.reload()
        address = silent.attrs["NetworkSettings"]["IPAddress"]
        env = {
            "MODEL_URI": "models:/diabetes-rf@champion",
            "MLFLOW_TRACKING_URI": f"http://{address}:5000",
            "INFERENCE_MODEL_FETCH_TIMEOUT": "3",
        }
        volumes = {}
        expected = (
            r"cannot download MODEL_URI=models:/diabetes-rf@champion within 3 s "
            r"\(INFERENCE_MODEL_FETCH_TIMEOUT\): the tracking server at http://[0-9.]+:5000 "
            r"does not answer; check MLFLOW_TRACKING_URI"
        )
    else:
        env, volumes = {}, {str(model): {"bind": "/opt/ml/model", "mode": "ro"}}
        expected = r"/opt/ml/model/MLmodel is not valid YAML \(.* at line 2, column 1\)"
    try:
        started = time.monotonic()
        container = client.containers.run(
            inference_image, ["serve"], environment=env, volumes=volumes, detach=True
        )
        try:
            status = container.wait(timeout=60)["StatusCode"]
            seconds = time.monotonic() - started
            stderr = container.logs(stdout=False, stderr=True).decode().strip().splitlines()
        finally:
            container.remove(force=True)
    finally:
        if silent is not None:
            silent.remove(force=True)
    assert status == 1
    assert re.match(f"mlstack-inference: error: {expected}", stderr[-1]), stderr
    assert seconds < 20
    documented("(INFERENCE_MODEL_FETCH_TIMEOUT)")
    documented("is not valid YAML")


# --- 9. --help, make help and the docs agree ----------------------------------------------

# Options with no variable behind them: plumbing, or what the command does, not a setting
# (`mlstack data` takes no settings at all).
NO_VARIABLE = {
    "--help", "--version", "--tracking-uri-in-network", "--jobs-dir", "--timeout", "--into",
    "--yes", "--example", "--write", "--images-dir", "--model-image", "--verbose",
}  # fmt: skip
# What one run of a command looks at (monitor's range and rules, the traffic it sends): the
# command's own arguments, with no setting behind them.
PER_RUN = {
    "monitor": {
        "--model-uri", "--variant", "--since", "--until", "--window", "--stattest",
        "--distance-threshold", "--p-value", "--ground-truth", "--label-column", "--output-dir",
        "--experiment", "--fail-on-drift",
    },
    "local traffic": {"--rows", "--shifted-share", "--shift", "--ground-truth"},
}  # fmt: skip
VARIABLE = re.compile(r"\[(?:env|default) [^\]]*\b[A-Z][A-Z0-9_]{2,}")


def options(group, path=()):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from options(command, (*path, name))
        for param in command.params:
            if param.param_type_name == "option":
                yield " ".join((*path, name)), param


def test_9_every_setting_option_names_its_variable() -> None:
    silent = sorted(
        f"{command} {param.opts[0]}"
        for command, param in options(cli)
        if not VARIABLE.search(param.help or "")
        and param.opts[0] not in NO_VARIABLE
        and param.opts[0] not in PER_RUN.get(command, ())
        and command != "data"
    )
    assert silent == []
    serve = cli.commands["local"].commands["serve"]
    helps = {param.opts[0]: param.help for param in serve.params}
    assert "[env SERVE_PORT" in helps["--port"] and "[env INFERENCE_IMAGE" in helps["--image"]


def test_9_the_groups_options_are_taken_after_the_command_too(tmp_path: Path) -> None:
    result = mlstack(
        "local", "train", "--tracking-uri", "http://127.0.0.1:9", "--data-dir", str(tmp_path),
        "--env-file", str(tmp_path / "none"),
    )  # fmt: skip
    assert one_line(result) == (
        f"{tmp_path / 'hyperparameters.json'} is missing: run `make data "
        f"ENV_FILE={tmp_path / 'none'}` first"
    )


def test_9_a_mistyped_option_is_one_line_naming_the_help_to_read(env_file: Path) -> None:
    result = mlstack("--env-file", str(env_file), "local", "train", "--foo")
    assert one_line(result, status=2) == "No such option '--foo': see `mlstack local train --help`"
    documented("No such option '--foo': see `mlstack local train --help`")


def test_9_make_help_documents_every_target() -> None:
    """Each target of the menu is in `make help` (build-NAME in build's line)."""
    makefile = (ROOT / "Makefile").read_text()
    phony = {
        name
        for line in re.findall(r"^\.PHONY: (.+)$", makefile, re.MULTILINE)
        for name in line.split()
        if "$" not in name
    } - {"help"}
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    )
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    listed = {re.sub(r"\x1b\[[0-9;]*m", "", name) for name in listed}
    assert sorted(phony - listed) == []
    assert "build-NAME builds one" in done.stdout


def test_9_make_help_starts_with_demo_and_groups_the_targets() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    groups = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert groups[:4] == ["Start here", "The loop", "Operations", "AWS (an account: "
                          "AWS_PROFILE / AWS_REGION; the tests use moto)"]  # fmt: skip
    targets = [line.split()[0] for line in text.splitlines() if line.startswith("  ")]
    assert targets[:2] == ["demo", "local-up"]
    cli_doc = (ROOT / "docs" / "cli.md").read_text()
    assert all(f"**{group.split(' (')[0]}**" in cli_doc for group in groups[:4])


def test_9_every_message_of_the_page_is_one_the_tests_check() -> None:
    """Each situation of the page has its test here (or in tests/compose)."""
    page = TROUBLESHOOTING.read_text()
    numbered = re.findall(r"^## (\d)\. ", page, re.MULTILINE)
    assert numbered == [str(n) for n in range(1, 10)]
    here = Path(__file__).read_text()
    assert all(f"def test_{n}_" in here for n in (1, 2, 3, 4, 6, 7, 8, 9))
