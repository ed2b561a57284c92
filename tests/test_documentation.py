"""The README's one configuration table and .env.example, held against what reads them.

What reads a variable comes from the settings classes themselves (field names, env_prefix and
aliases), from compose's ${NAME} references, and from two short lists below: variables only
libraries read, and variables only the Makefile reads. No Docker.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]

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
MAKEFILE_VARIABLES = {"BACKUP", "BACKUP_ROOT", "CONFIRM", "MODEL_IMAGE"}
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
    """The cells of each row of the README's configuration table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines and lines[0].startswith("| variable |"), "no configuration table in the README"
    for line in lines[1:]:
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
    assert {"Settings", "StoreSettings", "EntrySettings"} <= names
    assert "SAGEMAKER_BIND_TO_PORT" in variables_read()


def test_every_variable_read_is_in_the_table() -> None:
    table = {name for name, _ in documented_defaults()}
    missing = sorted(
        name
        for name in variables_read()
        if name not in table and not name.startswith(INTERNAL_PREFIX)
    )
    assert not missing, f"read by a settings class but not in the README's table: {missing}"


def test_every_variable_in_the_table_is_read() -> None:
    known = set(variables_read()) | compose_variables() | LIBRARY_VARIABLES | MAKEFILE_VARIABLES
    unread = sorted({name for name, _ in documented_defaults()} - known)
    assert not unread, f"in the README's table but read by nothing: {unread}"


def test_the_table_states_the_defaults_the_classes_have() -> None:
    read = variables_read()
    wrong = []
    for name, stated in documented_defaults():
        for field in read.get(name, []):
            actual = None if field.default_factory else shown(field.default)
            if stated and actual is not None and actual not in stated:
                wrong.append(f"{name}: README says {stated}, a settings class {actual!r}")
    assert not wrong, "; ".join(wrong)


def test_every_env_example_variable_is_in_the_table() -> None:
    table = {name for name, _ in documented_defaults()}
    unknown = sorted(env_example_variables() - table)
    assert not unknown, f".env.example sets variables the README's table lacks: {unknown}"


@pytest.mark.parametrize(
    "allowed", [LIBRARY_VARIABLES, MAKEFILE_VARIABLES], ids=["lib", "makefile"]
)
def test_the_allow_lists_hold_nothing_a_settings_class_reads(allowed: set[str]) -> None:
    assert not allowed & set(variables_read())
