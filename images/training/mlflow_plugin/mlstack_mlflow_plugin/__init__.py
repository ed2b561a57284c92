"""MLflow run context provider: the training job's tags on every run a user's script starts.

MLflow asks each provider registered under the `mlflow.run_context_provider` entry point
group for tags whenever the fluent API starts a run (mlflow.tracking.context.registry,
`resolve_tags`); tags the script passes itself win over these. The image's script-mode
runner (mlstack.training.script_mode) computes the tags of the job, the job identity and
`mlflow.parentRunId` of a tuning run, and hands them over in MLSTACK_RUN_TAGS. Nothing here
imports more of MLflow than the provider base class, which MLflow 2.x and 3.x share, so a
script whose requirements.txt installs an older client keeps its runs tagged and nested.
"""

from __future__ import annotations

import json
import sys
from types import TracebackType

from mlflow.tracking.context.abstract_context import RunContextProvider

from mlstack_mlflow_plugin.settings import TAGS_ENV, run_tags_json

__all__ = ["TAGS_ENV", "JobRunContext"]
_previous_hook = sys.excepthook


def _end_runs_then_report(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """An uncaught exception ends the script's active runs FAILED.

    Without this, a run started with a bare mlflow.start_run() (no `with`) is ended FINISHED
    by MLflow's exit hook even though the script failed.
    """
    _previous_hook(kind, error, tb)
    try:
        import mlflow

        status = "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED"
        while mlflow.active_run() is not None:
            mlflow.end_run(status)
    except Exception as problem:  # never hide the script's own error behind ours
        print(f"mlstack: could not end the active MLflow run: {problem}", file=sys.stderr)


class JobRunContext(RunContextProvider):
    """Active only inside an mlstack training job (MLSTACK_RUN_TAGS is set)."""

    def in_context(self) -> bool:
        active = bool(run_tags_json())
        if active and sys.excepthook is _previous_hook:
            sys.excepthook = _end_runs_then_report
        return active

    def tags(self) -> dict[str, str]:
        try:
            tags = json.loads(run_tags_json() or "{}")
        except ValueError:
            return {}
        return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}
