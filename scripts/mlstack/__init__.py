"""mlstack: the command-line tool (`mlstack`) that drives the ML loop, and its library.

Layout: `settings` (the only reader of the environment), `waiting` (the one way to wait),
`tuning` (the tuning definition and driver both backends share), `channels` (the data
channels' spec and the reference request), `local/` (the local stack), `aws/` (AWS and
SageMaker local mode), `cli` (click commands, thin).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def version() -> str:
    """The project's version: the top-level VERSION file (the images' release tag)."""
    return (ROOT / "VERSION").read_text().strip()
