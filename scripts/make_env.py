"""Write .env from .env.example, replacing every __generate__ value with a fresh secret.

An existing .env is kept as it is: its passwords are those the volumes were made with.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

PLACEHOLDER = "__generate__"


def render_env(example: str) -> str:
    """The example's text with each placeholder replaced by its own random secret."""
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and value.strip() == PLACEHOLDER and not key.lstrip().startswith("#"):
            line = f"{key}={secrets.token_urlsafe(24)}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(example_path: str = ".env.example", env_path: str = ".env") -> None:
    """Create env_path from example_path unless it exists."""
    env = Path(env_path)
    if env.exists():
        print(f"{env_path} exists: keeping it")
        return
    env.write_text(render_env(Path(example_path).read_text()))
    env.chmod(0o600)
    print(f"wrote {env_path} with freshly generated local passwords")


if __name__ == "__main__":
    main(*sys.argv[1:])
