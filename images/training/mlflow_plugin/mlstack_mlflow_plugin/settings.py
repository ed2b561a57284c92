"""The plugin's one setting, read here and nowhere else in the plugin.

MLSTACK_RUN_TAGS: the JSON object of tags the image's script-mode runner computed for the
job (mlstack.training.script_mode); set only inside a training job. Not a pydantic-settings
class, unlike the images' settings: the plugin runs inside the user's script, whose
requirements.txt may replace the image's pydantic (an MLflow 2.x client may bring 1.x), and
it must keep tagging runs whatever is installed. It depends on nothing but the stdlib.
"""

from __future__ import annotations

import os

TAGS_ENV = "MLSTACK_RUN_TAGS"


def run_tags_json() -> str:
    """The job's tags as the runner wrote them; empty outside a training job."""
    return os.environ.get(TAGS_ENV, "").strip()
