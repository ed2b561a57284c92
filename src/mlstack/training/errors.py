"""The training job's errors: TrainingError fails the job with its one line; Terminated stops it."""

from mlstack.core.errors import MlstackError


class TrainingError(MlstackError):
    """Bad input or configuration that stops the job; the message says what and how to fix it."""


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (a stopped job, `docker stop`).

    A BaseException, so that no `except Exception` on the way up swallows it.
    """
