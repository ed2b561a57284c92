"""The docs held against the code. No Docker.

- The one configuration table (docs/configuration.md) and .env.example against what reads
  them: the settings classes themselves (field names, env_prefix and aliases), compose's
  ${NAME} references, and two short lists below (variables only libraries read, variables
  only the Makefile reads).
- Every `make` target and `mlstack` command that README.md and docs/*.md name exists: the
  targets as make itself reads the Makefile, the commands as click's tree from
  `mlstack.cli.main:cli` has them.
- Every docs page is linked from the README, every relative link resolves (its anchor too),
  and headings nest: one title, no level skipped.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
CONFIGURATION = ROOT / "docs" / "configuration.md"

# Every module holding settings classes; each BaseSettings subclass defined in one counts.
SETTINGS_MODULES = [
    "mlstack.tracking.config",
    "mlstack.training.config",
    "mlstack.serving.config",
    "mlstack.cli.settings",
]
# Read by libraries the images run, not by our code: boto3, gunicorn, MLflow's client.
LIBRARY_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_ENDPOINT_URL",
    "AWS_SECRET_ACCESS_KEY",
    "GUNICORN_CMD_ARGS",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
}
# Read by the Makefile alone: what its targets take on their command line.
MAKEFILE_VARIABLES = {"BACKUP", "BACKUP_ROOT", "CONFIRM", "ENV_FILE", "MODEL_IMAGE"}
# The images' hand-overs to their own child processes (set by the image, not by a user).
INTERNAL_PREFIX = "MLSTACK_"
NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def settings_classes() -> list[type[BaseSettings]]:
    """The BaseSettings subclasses defined in SETTINGS_MODULES."""
    found = []
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseSettings)
                and value.__module__ == module_name
            ):
                found.append(value)
    return found


def field_variables(cls: type[BaseSettings], name: str, field: FieldInfo) -> list[str]:
    """The variables pydantic-settings reads for one field, as it reads them."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [choice for choice in alias.choices if isinstance(choice, str)]
    variable = cls.model_config.get("env_prefix", "") + name
    return [variable if cls.model_config.get("case_sensitive") else variable.upper()]


def variables_read() -> dict[str, list[FieldInfo]]:
    """Every variable a settings class reads -> the fields reading it."""
    read: dict[str, list[FieldInfo]] = {}
    for cls in settings_classes():
        for name, field in cls.model_fields.items():
            for variable in field_variables(cls, name, field):
                read.setdefault(variable, []).append(field)
    return read


def compose_variables() -> set[str]:
    """The ${NAME} references of the compose files (compose reads them from .env)."""
    text = "".join(path.read_text() for path in sorted((ROOT / "compose").glob("*.y*ml")))
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))


def table_rows() -> Iterator[list[str]]:
    """The cells of each row of the configuration table (docs/configuration.md)."""
    lines = CONFIGURATION.read_text().splitlines()
    starts = [index for index, line in enumerate(lines) if line.startswith("| variable |")]
    assert len(starts) == 1, "docs/configuration.md must hold exactly one configuration table"
    rows = []
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("| "):
            break
        rows.append(line)
    for line in rows:
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        if not set(cells[0]) <= {"-", " "}:
            yield cells


def documented_defaults() -> Iterator[tuple[str, list[str]]]:
    """(variable, the defaults its row states as `literal`s: one, or one per image/place)."""
    for cells in table_rows():
        names = NAME.findall(cells[0])
        separator = " / " if " / " in cells[0] else ", "
        parts = cells[2].split(separator) if len(names) > 1 else [cells[2]]
        for index, name in enumerate(names):
            part = parts[index].strip() if len(parts) == len(names) else ""
            yield name, re.findall(r"`([^`]*)`", part)


def env_example_variables() -> set[str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if re.match(r"[A-Z][A-Z0-9_]*=", line)}


def shown(default: object) -> str | None:
    """A field's default as the table writes it; None where it states none to compare (an
    empty default means the command works it out, as the row says)."""
    if default in (None, "") or isinstance(default, SecretStr | tuple):
        return None
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, Path) and default.is_relative_to(ROOT):
        return str(default.relative_to(ROOT))
    return str(default)


def test_the_settings_classes_are_found() -> None:
    names = {cls.__qualname__ for cls in settings_classes()}
    assert {"Settings", "StoreSettings", "LoopSettings"} <= names
    assert "SAGEMAKER_BIND_TO_PORT" in variables_read()


def test_every_variable_read_is_in_the_table() -> None:
    table = {name for name, _ in documented_defaults()}
    missing = sorted(
        name
        for name in variables_read()
        if name not in table and not name.startswith(INTERNAL_PREFIX)
    )
    assert not missing, f"read by a settings class but not in docs/configuration.md: {missing}"


def test_every_variable_in_the_table_is_read() -> None:
    known = set(variables_read()) | compose_variables() | LIBRARY_VARIABLES | MAKEFILE_VARIABLES
    unread = sorted({name for name, _ in documented_defaults()} - known)
    assert not unread, f"in docs/configuration.md but read by nothing: {unread}"


def test_the_table_states_the_defaults_the_classes_have() -> None:
    read = variables_read()
    wrong = []
    for name, stated in documented_defaults():
        for field in read.get(name, []):
            actual = None if field.default_factory else shown(field.default)
            if stated and actual is not None and actual not in stated:
                wrong.append(f"{name}: the table says {stated}, a settings class {actual!r}")
    assert not wrong, "; ".join(wrong)


def test_every_env_example_variable_is_in_the_table() -> None:
    table = {name for name, _ in documented_defaults()}
    unknown = sorted(env_example_variables() - table)
    assert not unknown, f".env.example sets variables docs/configuration.md lacks: {unknown}"


@pytest.mark.parametrize(
    "allowed", [LIBRARY_VARIABLES, MAKEFILE_VARIABLES], ids=["lib", "makefile"]
)
def test_the_allow_lists_hold_nothing_a_settings_class_reads(allowed: set[str]) -> None:
    assert not allowed & set(variables_read())


# --- what the docs name: make targets, mlstack commands, links, headings ----------------------

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^\s*```")
INLINE_CODE = re.compile(r"`([^`]+)`")  # a span may continue on the next line
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) (.+)$")
MAKE = re.compile(r"(?:^|[\s;&|(])make(?:\s+(.*)|$)")
MLSTACK = re.compile(r"(?:^|[\s;&|(/])mlstack(?:\s+(.*)|$)")
TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./%-]*$")
PLACEHOLDER = re.compile(r"[A-Z]{2,}|…|\.\.\.")
COMMAND_WORD = re.compile(r"^[a-z][a-z0-9-]*$")


def pages() -> list[Path]:
    """README.md and every page of docs/."""
    return [README, *DOCS]


def split_fences(text: str) -> tuple[list[str], list[str]]:
    """(the prose lines, the lines of fenced code blocks)."""
    prose: list[str] = []
    code: list[str] = []
    inside = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        (code if inside else prose).append(line)
    return prose, code


def code_snippets(text: str) -> list[str]:
    """Every line of a fenced block (its shell comment cut) and every inline code span."""
    prose, code = split_fences(text)
    snippets = [re.split(r"\s#", line, maxsplit=1)[0] for line in code]
    spans = INLINE_CODE.findall("\n".join(prose))
    return snippets + [span.replace("\n", " ") for span in spans]


def named_make_targets(text: str) -> set[str]:
    """The targets `make ...` is given in the text's code: words up to the first that is
    neither a target nor a VAR=value."""
    named = set()
    for snippet in code_snippets(text):
        for match in MAKE.finditer(snippet):
            for token in (match.group(1) or "").split():
                if "=" in token:
                    continue
                if not TARGET.match(token):
                    break
                named.add(token)
    return named


def makefile_targets() -> set[str]:
    """Every target of the Makefile as make reads it (pattern and computed rules expanded)."""
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MAKELEVEL", "MFLAGS"}}
    database = subprocess.run(
        ["make", "--print-data-base", "--question", "--no-builtin-rules", "-f", "Makefile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return set(re.findall(r"^([A-Za-z0-9][A-Za-z0-9_./-]*):(?!=)", database, re.MULTILINE))


def unknown_targets(named: set[str], targets: set[str]) -> list[str]:
    """The named targets the Makefile lacks; `build-NAME` matches any `build-...` target."""
    unknown = []
    for name in sorted(named):
        if PLACEHOLDER.search(name):
            pattern = re.compile("^" + PLACEHOLDER.sub(".+", name) + "$")
            if not any(pattern.match(target) for target in targets):
                unknown.append(name)
        elif name not in targets:
            unknown.append(name)
    return unknown


def named_mlstack_commands(text: str) -> list[list[str]]:
    """The words after each `mlstack` in the text's code."""
    return [
        (match.group(1) or "").split()
        for snippet in code_snippets(text)
        for match in MLSTACK.finditer(snippet)
    ]


def command_problem(words: list[str], root: click.Command) -> str | None:
    """Walk click's tree along the words: None when it reaches a command (or a placeholder
    such as GROUP), else what is wrong."""
    command = root
    walked = ["mlstack"]
    pending = iter(words)
    for word in pending:
        if word.startswith("-"):
            option = next(
                (p for p in command.params if isinstance(p, click.Option) and word in p.opts),
                None,
            )
            if option is not None and not option.is_flag and "=" not in word:
                next(pending, None)  # the option's value
            continue
        if not isinstance(command, click.Group) or not COMMAND_WORD.match(word):
            return None  # a leaf reached, or prose / a placeholder such as GROUP
        if word not in command.commands:
            return f"`{' '.join(walked)}` has no command {word!r}"
        command = command.commands[word]
        walked.append(word)
    return None


def test_every_make_target_named_in_the_docs_exists() -> None:
    targets = makefile_targets()
    assert {"help", "local-up", "test", "build-training"} <= targets, "make's database unread"
    unknown = {
        page.relative_to(ROOT).as_posix(): missing
        for page in pages()
        if (missing := unknown_targets(named_make_targets(page.read_text()), targets))
    }
    assert not unknown, f"make targets the Makefile lacks: {unknown}"


def test_every_mlstack_command_named_in_the_docs_exists() -> None:
    from mlstack.cli.main import cli

    problems = [
        f"{page.relative_to(ROOT).as_posix()}: {problem}"
        for page in pages()
        for words in named_mlstack_commands(page.read_text())
        if (problem := command_problem(words, cli))
    ]
    assert not problems, "; ".join(problems)


def test_the_checks_find_what_the_docs_name() -> None:
    readme = README.read_text()
    assert {"local-up", "test", "demo"} <= named_make_targets(readme)
    assert any(
        words[:2] == ["local", "train"]
        for page in pages()
        for words in named_mlstack_commands(page.read_text())
    )


def test_a_made_up_target_or_command_is_caught() -> None:
    from mlstack.cli.main import cli

    text = "Run `make local-up local-upp CONFIRM=yes` then `.venv/bin/mlstack local trian`."
    assert unknown_targets(named_make_targets(text), makefile_targets()) == ["local-upp"]
    problems = [command_problem(words, cli) for words in named_mlstack_commands(text)]
    assert problems == ["`mlstack local` has no command 'trian'"]
    assert command_problem(["--env-file", "x", "aws", "tune", "--jobs", "3"], cli) is None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(page: Path) -> list[tuple[int, str]]:
    """(level, text) of each heading outside code blocks."""
    prose, _ = split_fences(page.read_text())
    return [(len(m.group(1)), m.group(2)) for line in prose if (m := HEADING.match(line))]


def anchors(page: Path) -> set[str]:
    """The page's anchors, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for _, text in headings(page):
        base = slug(text)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """The page's links that are not URLs."""
    prose, _ = split_fences(page.read_text())
    links = LINK.findall("\n".join(prose))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def resolve(page: Path, link: str) -> tuple[Path, str]:
    """(the file a relative link points at, its anchor or '')."""
    path, _, anchor = link.partition("#")
    return ((page.parent / path).resolve() if path else page), anchor


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in pages():
        for link in relative_links(page):
            target, anchor = resolve(page, link)
            if not target.exists():
                broken.append(f"{page.name}: {link} (no such file)")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                broken.append(f"{page.name}: {link} (no such heading)")
    assert not broken, "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {resolve(README, link)[0] for link in relative_links(README)}
    assert DOCS, "no docs pages found"
    unlinked = [page.name for page in DOCS if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.name)
def test_headings_nest(page: Path) -> None:
    levels = [level for level, _ in headings(page)]
    assert levels and levels[0] == 1 and levels.count(1) == 1, "one title (#) first, only one"
    skipped = [
        text
        for (previous, _), (level, text) in zip(headings(page), headings(page)[1:], strict=False)
        if level > previous + 1
    ]
    assert not skipped, f"headings that skip a level: {skipped}"
