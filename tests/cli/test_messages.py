"""What the messages tell users to use exists: every repository path, `make` target and
`mlstack` command named in a string of the package (the CLI's and the images' messages,
docstrings left out) is in the tree, the Makefile and click's command tree. No Docker."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_documentation import command_problem, makefile_targets, unknown_targets

from mlstack.cli.main import cli
from support.images import ROOT

SOURCES = [ROOT / "src" / "mlstack", ROOT / "images" / "training" / "mlflow_plugin"]
TOP_LEVEL = "scripts|src|images|compose|docs|tests|examples|offline|\\.ci"
PATH = re.compile(rf"(?<![\w/.-])((?:{TOP_LEVEL})/[\w./{{}}*-]*[\w}}])")
MAKE = re.compile(r"(?<![\w-])make ((?:[a-z][\w-]*)(?: [a-z][\w-]*)*)")
MLSTACK = re.compile(r"(?<![\w./-])mlstack((?: (?:--?[a-z][\w-]*|[a-z][\w-]*))+)")
PLACEHOLDER = re.compile(r"\{[^}]*\}")


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring nodes of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def strings(path: Path) -> Iterator[str]:
    """Every string literal of a module but its docstrings; an f-string with `{}` for each
    value it formats."""
    tree = ast.parse(path.read_text())
    skip = docstrings(tree)
    parts_of_fstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = ""
            for part in node.values:
                parts_of_fstrings.add(id(part))
                if isinstance(part, ast.Constant):
                    text += str(part.value)
                else:
                    text += "{}"
            yield text
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skip | parts_of_fstrings
        ):
            yield node.value


def messages() -> list[tuple[str, str]]:
    """(module, string) for every string of the package's modules."""
    return [
        (path.relative_to(ROOT).as_posix(), text)
        for source in SOURCES
        for path in sorted(source.rglob("*.py"))
        for text in strings(path)
    ]


def missing_paths(found: list[tuple[str, str]]) -> list[str]:
    missing = []
    for module, text in found:
        for name in PATH.findall(text):
            pattern = PLACEHOLDER.sub("*", name.rstrip("."))
            if not any(ROOT.glob(pattern)) and not (ROOT / pattern).exists():
                missing.append(f"{module}: {name}")
    return missing


def test_every_path_a_message_names_exists() -> None:
    found = messages()
    assert any("docs/configuration.md" in text for _, text in found), "the strings were not read"
    assert missing_paths(found) == []


def test_every_make_target_a_message_names_exists() -> None:
    targets = makefile_targets()
    named = {
        word: module
        for module, text in messages()
        for words in MAKE.findall(text)
        for word in words.split()[:1]
    }
    assert {"local-up", "build"} <= set(named), "no make target found in the messages"
    assert unknown_targets(set(named), targets) == []


def test_every_mlstack_command_a_message_names_exists() -> None:
    problems = [
        f"{module}: {problem}"
        for module, text in messages()
        for words in MLSTACK.findall(text)
        if (problem := command_problem(PLACEHOLDER.sub("X", words).split(), cli))
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("text", "caught"),
    [
        ("run scripts/prepare_data.py first", True),
        ("run `mlstack data` first", False),
        ("see images/{}/Dockerfile", False),
    ],
)
def test_a_path_that_is_gone_is_caught(text: str, caught: bool) -> None:
    assert bool(missing_paths([("m.py", text)])) == caught
