"""The error type for problems the user can fix: its message is the line they see."""


class TrainingError(Exception):
    """Bad input or configuration that stops the job; the message says what and how to fix it."""


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (a stopped job, `docker stop`).

    A BaseException, so that no `except Exception` on the way up swallows it.
    """
