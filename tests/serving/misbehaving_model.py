"""A pyfunc model (MLflow "models from code") that misbehaves on request, for server tests.

Each row names an action: "ok" answers 1.0; "sleep" sleeps `seconds`; "spin" keeps
the CPU (and the GIL, in turns) busy for `seconds`, saying "spinning" in the log first;
"raise" raises RuntimeError, a bug in the model; "die" kills its worker process, as the
kernel's OOM killer would.
"""

from __future__ import annotations

import os
import signal
import time

import mlflow.pyfunc
from mlflow.models import set_model


class Misbehaving(mlflow.pyfunc.PythonModel):
    """Does what each row's action says."""

    def predict(self, context, model_input, params=None):
        answers = []
        for action, seconds in zip(model_input["action"], model_input["seconds"], strict=True):
            if action == "sleep":
                time.sleep(seconds)
            elif action == "spin":
                print("spinning", flush=True)  # the worker is busy from here: tests wait for it
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    sum(range(1000))
            elif action == "raise":
                raise RuntimeError("a bug in the model")
            elif action == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            answers.append(1.0)
        return answers


set_model(Misbehaving())
