"""Click options that override settings: each names its environment variable in --help,
and an option not given (None) falls back to the environment, then the stack's env file.

A group's options are accepted after its command too: `shared_options` gives each command a
copy that records what it was given in `ctx.meta`, where the command finds it over the
group's (`mlstack local train --tracking-uri URI` as well as `mlstack local --tracking-uri
URI train`). The root's --env-file is one of them (`env_file_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mlstack import ROOT
from mlstack.cli.settings import DEFAULT_ENV_FILE, Settings
from mlstack.core.settings import variable

GIVEN = "local"  # ctx.meta's key for the group options given (before or after the command)
ENV_FILE = "env_file"
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class Context:
    """What the root command passes down: the settings file."""

    env_file: Path


def setting_option(
    cls: type[Settings], field: str, help_text: str, *decls: str, **kwargs: Any
) -> Decorator:
    """--FIELD (or decls) overriding the settings' field; its help names the variable."""
    info = cls.model_fields[field]
    shown = info.default
    if isinstance(shown, Path) and shown.is_relative_to(ROOT):
        shown = shown.relative_to(ROOT)  # data/diabetes, as the docs write it
    default = "" if shown in ("", None) else f"; default {shown}"
    return click.option(
        *(decls or (f"--{field.replace('_', '-')}",)),
        field,
        default=None,
        help=f"{help_text} [env {variable(cls, field)}{default}]",
        **kwargs,
    )


def env_file_option(**kwargs: Any) -> Decorator:
    """--env-file: the stack's settings file (ENV_FILE, as the Makefile names it)."""
    return click.option(
        "--env-file",
        envvar="ENV_FILE",
        type=click.Path(path_type=Path, dir_okay=False),
        help="the stack's settings file, read after the environment [env ENV_FILE; default .env]",
        **kwargs,
    )


def group_options(decorators: Sequence[Decorator]) -> Decorator:
    """Apply the options to a group, in the order listed."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return decorate


def options_of(decorators: Sequence[Decorator]) -> list[click.Option]:
    """The click.Option objects the decorators make."""

    def holder() -> None:
        """Only carries the options."""

    group_options(decorators)(holder)
    return list(reversed(holder.__click_params__))  # type: ignore[attr-defined]


def remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Record an option given after the command, where make_loop and env_file_of look."""
    if value is not None:
        if param.name == ENV_FILE:
            ctx.meta[ENV_FILE] = value
        else:
            ctx.meta.setdefault(GIVEN, {})[param.name] = value
    return value


def shared_options(decorators: Sequence[Decorator] = ()) -> Decorator:
    """Give a command copies of its group's options (and --env-file), unless it has an
    option of the same name: given after the command, they win over the group's."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        params = getattr(function, "__click_params__", [])
        own = {opt for param in params for opt in param.opts}
        copies = []
        for source in options_of([*decorators, env_file_option()]):
            if own & set(source.opts):
                continue
            copy = click.Option(
                [*source.opts, str(source.name)],
                type=source.type,
                default=None,
                expose_value=False,
                callback=remember,
                help=source.help,
                envvar=None,
            )
            copies.append(copy)
        # click lists a command's options in the reverse order of __click_params__: its own
        # first, then these in the order given.
        function.__click_params__ = [*reversed(copies), *params]  # type: ignore[attr-defined]
        return function

    return decorate


def env_file_of(ctx: click.Context) -> Path:
    """The env file: --env-file given after the command, else the root's (ENV_FILE, .env)."""
    given = ctx.meta.get(ENV_FILE)
    if given is not None:
        return Path(given)
    root = ctx.find_root().obj
    return Path(root.env_file) if isinstance(root, Context) else Path(DEFAULT_ENV_FILE)
