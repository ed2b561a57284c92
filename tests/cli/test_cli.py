"""The `mlstack` command: every command has --help, and the Makefile calls only commands
that exist, so `make help`, the docs and `mlstack --help` tell one story."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from mlstack import version
from mlstack.cli.main import cli
from support.images import ROOT


def commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of the tree, groups included."""
    found = [path]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += commands(command, (*path, name))
        else:
            found.append((*path, name))
    return found


@pytest.mark.parametrize("path", commands(cli), ids=lambda path: " ".join(path) or "mlstack")
def test_every_command_has_help(path: tuple[str, ...]):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("usage:") or "Usage:" in result.output


def test_version_is_the_version_file():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.output.strip() == f"mlstack, version {version()}"
    assert version() == (ROOT / "VERSION").read_text().strip()


def test_the_makefile_calls_existing_commands():
    makefile = (ROOT / "Makefile").read_text()
    tree = {" ".join(path) for path in commands(cli)}
    called = {f"local {word}" for word in re.findall(r"\$\(LOOP\) ([a-z-]+)", makefile)}
    called |= {f"aws {word}" for word in re.findall(r"\$\(AWS\) ([a-z-]+)", makefile)}
    called |= set(re.findall(r"\$\(MLSTACK\) ((?:local |aws )?[a-z][a-z-]*)", makefile))
    called -= {"local", "aws"}  # the LOOP and AWS variables themselves
    assert called, "the Makefile calls no mlstack command"
    assert called - tree == set()
    # Every workflow command is on the menu (make-env runs with the system python3, before the
    # venv exists).
    leaves = {" ".join(p) for p in commands(cli) if len(p) > 1 or p == ("build-model-image",)}
    assert leaves - called - {"local", "aws"} <= {"local make-env"}
