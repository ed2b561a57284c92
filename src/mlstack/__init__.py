"""mlstack: one package for the three images and the `mlstack` command.

`core` (what every component shares: the settings base, the error base, the one wait),
`tracking` (the tracking server image), `training` (the training image), `serving` (the
inference image), `cli` (the `mlstack` command and its library). Each image carries `core`
and its own component; the host's `make venv` installs the whole package.
"""

from __future__ import annotations

from pathlib import Path

# The repository in a checkout; /opt/mlstack in an image (its Dockerfile puts VERSION there).
ROOT = Path(__file__).resolve().parents[2]


def version() -> str:
    """The project's version: the VERSION file (the images' release tag)."""
    return (ROOT / "VERSION").read_text().strip()
