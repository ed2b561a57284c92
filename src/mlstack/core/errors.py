"""The one error base: every problem a user can fix is an MlstackError, whose message is the
one line they see — what is wrong, in the words they typed, and what to do."""

from __future__ import annotations


class MlstackError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""


class StartupError(MlstackError):
    """A configuration or environment problem that stops a server from starting."""
