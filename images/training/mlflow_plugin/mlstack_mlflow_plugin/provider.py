"""MLflow run context provider: the training job's tags on every run a user's script starts.

MLflow asks each provider registered under the `mlflow.run_context_provider` entry point
group for tags whenever the fluent API starts a run (mlflow.tracking.context.registry,
`resolve_tags`); tags the script passes itself win over these. MLflow imports this module at
`import mlflow` (the registry is built when mlflow.tracking.fluent is imported), before the
script can ask for a run or a tracking URI: that is when, in a job, the job's MLflow variables
are set (hyperparameters winning) and the scikit-learn format default is installed.
Nothing here imports more of MLflow than the provider base class, which MLflow 2.x and 3.x
share.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

from mlflow.tracking.context.abstract_context import RunContextProvider

from mlstack_mlflow_plugin import baseline, settings, sklearn_format
from mlstack_mlflow_plugin.job import FAILURE_TAG, FAILURE_TAG_LIMIT, run_tags, tracking_variables

_previous_hook = sys.excepthook


def _end_runs_then_report(
    kind: type[BaseException], error: BaseException, tb: TracebackType | None
) -> None:
    """An uncaught exception ends the script's active runs FAILED, with its reason as a tag.

    Without this, a run started with a bare mlflow.start_run() (no `with`) is ended FINISHED
    by MLflow's exit hook even though the script failed.
    """
    _previous_hook(kind, error, tb)
    try:
        import mlflow

        status = "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED"
        reason = "".join(traceback.format_exception_only(kind, error)).strip()
        while mlflow.active_run() is not None:
            mlflow.set_tag(FAILURE_TAG, reason[:FAILURE_TAG_LIMIT])
            mlflow.end_run(status)
    except Exception as problem:  # never hide the script's own error behind ours
        print(f"mlstack: could not end the active MLflow run: {problem}", file=sys.stderr)


class JobRunContext(RunContextProvider):
    """Active only inside a SageMaker script-mode job (SM_TRAINING_ENV is set)."""

    def in_context(self) -> bool:
        active = settings.read().in_job
        if active and sys.excepthook is _previous_hook:
            sys.excepthook = _end_runs_then_report
        if active:
            # MLflow 2.x loads this plugin while mlflow.models.model is still being imported,
            # too early to wrap Model.log; at a run's start every import is done (idempotent).
            baseline.install()
        return active

    def tags(self) -> dict[str, str]:
        return run_tags(settings.read())


def _prepare() -> None:
    """At `import mlflow` in a job's script: the job's MLflow variables, the scikit-learn
    format default, and the monitoring baseline of the models it logs."""
    job = settings.read()
    if job.in_job:
        os.environ.update(tracking_variables(job))
        sklearn_format.install()
        baseline.install()


_prepare()
