"""Click options that override settings: each names its environment variable in --help,
and an option not given (None) falls back to the environment, then `.env`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mlstack.cli.settings import Settings
from mlstack.core.settings import variable


@dataclass(frozen=True)
class Context:
    """What the root command passes down: the settings file."""

    env_file: Path


def setting_option(
    cls: type[Settings], field: str, help_text: str, *decls: str, **kwargs: Any
) -> Callable:
    """--FIELD (or decls) overriding the settings' field; its help names the variable."""
    info = cls.model_fields[field]
    default = "" if info.default in ("", None) else f"; default {info.default}"
    return click.option(
        *(decls or (f"--{field.replace('_', '-')}",)),
        field,
        default=None,
        help=f"{help_text} [env {variable(cls, field)}{default}]",
        **kwargs,
    )
