"""The one settings base: every component reads its environment through a subclass of
`Settings`, and nowhere else.

- A field is read from exactly the variable the configuration table names: `env(NAME, ...)`
  (a field without one is read from its own name, upper-cased, where a subclass says so).
- Values are stripped, and a blank one is unset: the default applies.
- A bad value becomes one line naming the variable, what it must be and what it got
  (`one_line`), raised as the caller's MlstackError (`load`).
- `load(cls, env)` with a mapping reads that mapping only, never the process environment,
  so a caller (a test, a child's environment being prepared) gets exactly what it handed in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar, TypeVar

from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mlstack.core.errors import MlstackError

# pydantic's error types in the words every component uses (one line per variable).
WORDING = {
    "int_parsing": "must be a whole number, got {input!r}",
    "int_from_float": "must be a whole number, got {input!r}",
    "bool_parsing": "must be true or false, got {input!r}",
    "greater_than_equal": "must be at least {ge}, got {input}",
    "less_than_equal": "must be at most {le}, got {input}",
    "greater_than": "must be above {gt}, got {input}",
    "float_parsing": "must be a number, got {input!r}",
    "finite_number": "must be a finite number, got {input!r}",
}
_ONLY_GIVEN: ContextVar[bool] = ContextVar("mlstack_settings_only_given", default=False)
S = TypeVar("S", bound="Settings")


def env(
    name: str | AliasChoices, default: Any = None, minimum: int | None = None, **more: Any
) -> Any:
    """A field read from the variable `name` (its exact spelling, as the docs list it);
    `minimum`: the smallest whole number allowed."""
    return Field(default, validation_alias=name, ge=minimum, **more)


class Settings(BaseSettings):
    """What every component's settings share: exact names, blank is unset, one-line errors."""

    # Variables are matched by their exact names; unrelated ones are ignored. populate_by_name
    # lets code and tests build Settings(workers=2) by field name. env_ignore_empty: a blank
    # variable is skipped where it is read, so an alias behind it (AWS_REGION="" then
    # AWS_DEFAULT_REGION) still counts; _blank_is_unset does the same for given values.
    model_config = SettingsConfigDict(
        case_sensitive=True,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
        env_ignore_empty=True,
    )
    # Extra wording for a component's own fields, by pydantic error type.
    WORDING: ClassVar[Mapping[str, str]] = {}
    # What a "not set" message adds: where the user finds the variable.
    REQUIRED_HINT: ClassVar[str] = "see docs/configuration.md"

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        """Values are read stripped; an empty one means the default."""
        return without_blanks(values) if isinstance(values, Mapping) else values

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The given values only, when `load` was handed a mapping; else the usual sources."""
        if _ONLY_GIVEN.get():
            return (init_settings,)
        return (init_settings, env_settings, dotenv_settings, file_secret_settings)

    def require(self, field: str) -> Any:
        """A setting that the caller cannot do without; one line naming it when unset."""
        value = getattr(self, field)
        if value in ("", None):
            raise MlstackError(f"{variable(type(self), field)} is not set ({self.REQUIRED_HINT})")
        return value


def without_blanks(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values stripped, blank ones left out (unset: the default applies)."""
    stripped = {k: v.strip() if isinstance(v, str) else v for k, v in values.items()}
    return {k: v for k, v in stripped.items() if v != ""}


def aliases(cls: type[Settings], field: str) -> list[str]:
    """The variables a field is read from, in order (its aliases, else its name)."""
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [str(alias or field.upper())]


def variable(cls: type[Settings], field: str) -> str:
    """The environment variable a field is read from (its first alias, else its name)."""
    return aliases(cls, field)[0]


def variables(cls: type[Settings]) -> set[str]:
    """Every environment variable the class reads (aliases included)."""
    return {name for field in cls.model_fields for name in aliases(cls, field)}


def field_of(cls: type[Settings], located: str) -> str:
    """The field an error's location names: a field's name, or one of its variables."""
    if located in cls.model_fields:
        return located
    for field in cls.model_fields:
        if located.upper() in {name.upper() for name in aliases(cls, field)}:
            return field
    return located


def given_as(cls: type[Settings], field: str, value: Any) -> str:
    """The variable the user set for a field: of its aliases (AWS_REGION, AWS_DEFAULT_REGION),
    the one in the environment holding the value given, else its first."""
    for choice in aliases(cls, field):
        if os.environ.get(choice, "").strip() == str(value):
            return choice
    return variable(cls, field)


def one_line(
    cls: type[Settings], error: ValidationError, names: Mapping[str, str] | None = None
) -> str:
    """pydantic's first error as one line: the variable (or names[field], what the user
    typed instead, such as an option), what it must be, the value given."""
    first = error.errors(include_url=False)[0]
    located = field_of(cls, str(first["loc"][0])) if first["loc"] else ""
    if located in (names or {}):
        name = (names or {})[located]
    elif located in cls.model_fields:
        name = given_as(cls, located, first.get("input"))
    else:
        name = located
    if first["type"] == "missing":
        return f"{name} is not set ({cls.REQUIRED_HINT})"
    wording = {**WORDING, **cls.WORDING}.get(first["type"], "{msg}")
    text = wording.format(**first, **first.get("ctx", {})).removeprefix("Value error, ")
    return f"{name} {text}"


@contextmanager
def _only_given() -> Iterator[None]:
    token = _ONLY_GIVEN.set(True)
    try:
        yield
    finally:
        _ONLY_GIVEN.reset(token)


def load(
    cls: type[S],
    env: Mapping[str, str] | None = None,
    *,
    error: type[MlstackError] = MlstackError,
    init: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    **overrides: Any,
) -> S:
    """Read and check the settings: the process environment (and the class's env file), or
    only `env` when given; `overrides` (by field name, None dropped) win over both; `init`:
    pydantic-settings' own options (`_env_file`). A bad value raises `error` with one line
    naming it (as `names` calls the field, when it does: the option it was given by)."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        if env is None:
            return cls(**(init or {}), **given)
        with _only_given():
            # Blanks go before the aliases are resolved, as env_ignore_empty does for os.environ.
            return cls(**(init or {}), **{**without_blanks(env), **given})
    except ValidationError as problem:
        raise error(one_line(cls, problem, names)) from None
    except MlstackError as problem:  # a model validator's own one line
        raise error(str(problem)) from None
