"""src/mlstack/cli/local/make_env.py (`mlstack local make-env`, the first step of `up`): a
stack's env file is private from its first byte, names its stack, and is tightened and
completed later."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlstack.cli.local import make_env

EXAMPLE = "# comment=__generate__\nA=1\nSECRET=__generate__\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """The most permissive umask, so only the code's own care keeps the file private."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_env_is_never_readable_by_others(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE)
    seen = []  # the mode of the file that becomes .env, as it holds the secrets
    real_replace = os.replace

    def replace(source, target):
        seen.append((mode(Path(source)), Path(source).read_text()))
        real_replace(source, target)

    monkeypatch.setattr(make_env.os, "replace", replace)
    make_env.main(str(example), str(env))
    assert mode(env) == 0o600
    assert seen and seen[0][0] == 0o600 and "SECRET=" in seen[0][1]
    text = env.read_text()
    assert "A=1" in text and "__generate__" not in text.split("\n", 1)[1]
    assert {p.name for p in tmp_path.iterdir()} == {".env.example", ".env"}  # no leftovers


def test_an_existing_env_found_looser_is_tightened_and_kept(tmp_path: Path) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE)
    env.write_text("A=1\nSECRET=volumes-were-made-with-this\n")
    env.chmod(0o644)
    make_env.main(str(example), str(env))
    assert mode(env) == 0o600
    assert env.read_text() == "A=1\nSECRET=volumes-were-made-with-this\n"


def test_settings_the_example_gained_are_added_with_fresh_secrets(
    tmp_path: Path, open_umask: None
) -> None:
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text(EXAMPLE + "NEW_SECRET=__generate__\nNEW_PLAIN=x\n")
    env.write_text("A=2\nSECRET=kept")
    env.chmod(0o600)
    make_env.main(str(example), str(env))
    lines = env.read_text().splitlines()
    assert lines[:2] == ["A=2", "SECRET=kept"]
    added = dict(line.split("=", 1) for line in lines[2:])
    assert set(added) == {"NEW_SECRET", "NEW_PLAIN"} and added["NEW_PLAIN"] == "x"
    assert len(added["NEW_SECRET"]) >= 24 and added["NEW_SECRET"] != "__generate__"
    assert mode(env) == 0o600


def test_the_stack_s_name_and_ports_are_recorded(tmp_path: Path) -> None:
    """`mlstack local up --name newcomer --port 15600`: the file names its stack, in place of
    the example's values; a file that lacks them (an older one) gets them appended."""
    example, env = tmp_path / ".env.example", tmp_path / ".env"
    example.write_text("COMPOSE_PROJECT=mlstack\nMLFLOW_PORT=5000\nSECRET=__generate__\n")
    identity = {"COMPOSE_PROJECT": "newcomer", "MLFLOW_PORT": "15600", "SERVE_PORT": "15602"}
    make_env.main(str(example), str(env), identity)
    lines = env.read_text().splitlines()
    assert lines[:2] == ["COMPOSE_PROJECT=newcomer", "MLFLOW_PORT=15600"]
    assert lines[3] == "SERVE_PORT=15602"
    older = tmp_path / ".env.older"
    older.write_text("SECRET=kept\n")
    make_env.main(str(example), str(older), identity)
    assert older.read_text().splitlines() == [
        "SECRET=kept",
        "COMPOSE_PROJECT=newcomer",
        "MLFLOW_PORT=15600",
        "SERVE_PORT=15602",
    ]
