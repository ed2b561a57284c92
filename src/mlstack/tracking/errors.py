"""The one error type start-up raises: its message is the line the user sees."""


class StartupError(Exception):
    """Configuration or environment problem that stops the server from starting."""
