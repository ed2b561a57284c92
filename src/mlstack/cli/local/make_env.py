"""Write a stack's env file (.env) from .env.example, replacing every __generate__ value with
a fresh secret and recording the stack's name and ports.

The file is created with mode 0600 from its first byte (a private temporary file in the
same directory, renamed into place), so no other user can read it even for a moment.
An existing file is kept, since its passwords are those the volumes were made with;
it is tightened to 0600 when found looser, and settings the example gained since it
was written (a new secret, the stack's name) are appended to it.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER = "__generate__"
PRIVATE = 0o600


def _generated(value: str) -> str:
    return secrets.token_urlsafe(24) if value.strip() == PLACEHOLDER else value


def render_env(example: str, values: Mapping[str, str] | None = None) -> str:
    """The example's text with each placeholder replaced by its own random secret, and the
    given values in place of the example's (appended when it has none)."""
    given = dict(values or {})
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            value = given.pop(key.strip(), value)
            line = f"{key}={_generated(value)}"
        lines.append(line)
    lines += [f"{key}={value}" for key, value in given.items()]
    return "\n".join(lines) + "\n"


def _keys(text: str) -> set[str]:
    return {
        line.partition("=")[0].strip()
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }


def missing_settings(example: str, existing: str, values: Mapping[str, str] | None = None) -> str:
    """Lines (placeholders filled, the given values in place of the example's) for the
    example's settings, and the given ones, that the existing file lacks."""
    have = _keys(existing)
    wanted = {
        key.strip(): value
        for key, sep, value in (line.partition("=") for line in example.splitlines())
        if sep and not key.lstrip().startswith("#")
    }
    wanted.update(values or {})
    lines = [f"{key}={_generated(value)}" for key, value in wanted.items() if key not in have]
    return "".join(f"{line}\n" for line in lines)


def write_private(path: Path, text: str) -> None:
    """Create or replace path atomically with mode 0600, whatever the umask."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, PRIVATE)  # mkstemp makes 0600 already; say so explicitly
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(
    example_path: str = ".env.example",
    env_path: str = ".env",
    values: Mapping[str, str] | None = None,
) -> None:
    """Create env_path from example_path (values: what it records instead of the example's,
    such as the stack's name and ports), or tighten and complete an existing one."""
    env = Path(env_path)
    example = Path(example_path).read_text()
    if not env.exists():
        write_private(env, render_env(example, values))
        print(f"wrote {env_path} (mode 0600) with freshly generated local passwords")
        return
    mode = stat.S_IMODE(env.stat().st_mode)
    if mode & 0o077:
        env.chmod(PRIVATE)
        print(f"{env_path} was readable by others (mode {mode:04o}): now 0600")
    added = missing_settings(example, env.read_text(), values)
    if added:
        existing = env.read_text()
        separator = "" if existing.endswith("\n") or not existing else "\n"
        write_private(env, existing + separator + added)
        names = ", ".join(line.partition("=")[0] for line in added.splitlines())
        print(f"{env_path} exists: kept it, added {names}")
    else:
        print(f"{env_path} exists: keeping it")
