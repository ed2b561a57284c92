"""The reference-style training script (train.py) and its requirements variants.

`source_dir(dest, pin)` lays out a source directory as a user ships it: train.py alone (the
image's own MLflow client), or with requirements-mlflow-<pin>.txt as its requirements.txt.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).parent
ENTRY_POINT = "train.py"
# The MLflow pins of the variants (requirements-mlflow-<pin>.txt); None: no requirements.txt.
PINS = ("2.12.1", "2.22.5", "3.14.0")


def source_dir(dest: Path, pin: str | None = None) -> Path:
    """dest holding train.py and, for a pin, its requirements.txt; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HERE / ENTRY_POINT, dest / ENTRY_POINT)
    if pin is not None:
        shutil.copy2(HERE / f"requirements-mlflow-{pin}.txt", dest / "requirements.txt")
    return dest
