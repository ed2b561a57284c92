"""The command's one voice: every failure a user can fix is a `CliError`, shown as ONE line on
stderr, `mlstack: error: WHAT IS WRONG: WHAT TO DO`, with exit status 1.

Every command raises a CliError (or a subclass named for its concern); click shows it. The
root group (`MlstackGroup`) is the one place the rest is turned into that line: click's own
usage errors, and the exceptions of the libraries the commands drive (Docker, requests,
MLflow, botocore), each in the words of what the user can do about it.
"""

from __future__ import annotations

import re
import sys
from typing import IO, Any, NoReturn

import click

from mlstack.core.errors import MlstackError

PROGRAM = "mlstack"
INTERRUPTED = 130  # a shell's status for a command stopped by Ctrl-C (128 + SIGINT)
MAKE_HINT = re.compile(r"\bmake [a-z][a-z0-9-]*")


class CliError(MlstackError, click.ClickException):
    """A problem the user can fix; its message says what is wrong and what to do."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(error_line(self.format_message()), file=file or sys.stderr)


def error_line(message: str) -> str:
    """`mlstack: error: MESSAGE`, the message's lines joined into one."""
    joined = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    return f"{PROGRAM}: error: {joined}"


def warn(message: str) -> None:
    """One line on stderr that does not stop the command."""
    click.echo(f"{PROGRAM}: warning: {message}", err=True)


def usage_line(error: click.UsageError) -> str:
    """click's usage error (three lines: usage, hint, error) as one line with the fix."""
    command = error.ctx.command_path if error.ctx else PROGRAM
    return f"{error.format_message().rstrip('.')}: see `{command} --help`"


def first_line(text: object, limit: int = 300) -> str:
    """The first non-blank line of a message, at most limit characters."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return (lines[0] if lines else "")[:limit]


def translated(error: Exception) -> CliError | None:
    """A library's exception as the one line a user acts on; None for a genuine bug. An
    MlstackError of a module the images share with the CLI already says what to do."""
    if isinstance(error, MlstackError):
        return CliError(str(error))
    for translate in (_docker, _requests, _mlflow, _botocore):
        found = translate(error)
        if found is not None:
            return found
    return None


def _docker(error: Exception) -> CliError | None:
    errors = sys.modules.get("docker.errors")
    if errors is None or not isinstance(error, errors.DockerException):
        return None
    if isinstance(error, errors.ImageNotFound):
        return CliError(f"{first_line(error)}: build it (make build)")
    if isinstance(error, errors.APIError):
        return CliError(f"Docker refused: {first_line(error.explanation or error)}")
    return CliError(f"no Docker engine answers ({first_line(error)}): start Docker")


def _requests(error: Exception) -> CliError | None:
    exceptions = sys.modules.get("requests.exceptions")
    if exceptions is None or not isinstance(error, exceptions.RequestException):
        return None
    url = getattr(error.request, "url", None) or "the server"
    if isinstance(error, exceptions.ConnectionError | exceptions.Timeout):
        return CliError(f"nothing answers at {url}: is it running? (make local-up)")
    return CliError(f"{url}: {first_line(error)}")


def _mlflow(error: Exception) -> CliError | None:
    exceptions = sys.modules.get("mlflow.exceptions")
    if exceptions is None or not isinstance(error, exceptions.MlflowException):
        return None
    text = str(getattr(error, "message", error))
    if "401" in text or "not authenticated" in text.lower():
        return CliError(
            "the tracking server refused the login (401): check MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD; for a local stack, `mlstack local login` prints those "
            "of its env file"
        )
    if "403" in text and "permission" in text.lower():
        return CliError(f"the tracking server refused: {first_line(text)}: ask its admin")
    if "Max retries exceeded" in text or "Connection refused" in text:
        return CliError("the tracking server does not answer: is the stack up? (make local-up)")
    return CliError(f"MLflow: {first_line(text)}")


def _botocore(error: Exception) -> CliError | None:
    exceptions = sys.modules.get("botocore.exceptions")
    aws_errors = () if exceptions is None else (exceptions.BotoCoreError, exceptions.ClientError)
    if not aws_errors or not isinstance(error, aws_errors):
        return None
    if isinstance(error, exceptions.NoCredentialsError):
        return CliError("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID")
    if isinstance(error, exceptions.ClientError):
        return CliError(client_error_line(error))
    if isinstance(error, exceptions.EndpointConnectionError):
        return CliError(
            f"cannot reach AWS: {error}; check the network, AWS_REGION, AWS_ENDPOINT_URL"
        )
    if isinstance(error, exceptions.WaiterError):
        return CliError(f"gave up waiting: {first_line(error)}")
    return CliError(f"AWS: {first_line(error)}")


def client_error_line(error: Exception) -> str:
    """One line for a botocore ClientError: the operation, AWS's code and its message."""
    response = getattr(error, "response", None) or {}
    details = response.get("Error", {})
    operation = getattr(error, "operation_name", "AWS call")
    message = first_line(details.get("Message") or error)
    return f"{operation} failed: {details.get('Code', 'Error')}: {message}"


class MlstackGroup(click.Group):
    """The root group: the one place a failure becomes `mlstack: error: ...`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as error:
            error.message = for_this_stack(error.message, ctx)
            raise
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:
            found = translated(error)
            if found is None:
                raise
            raise found from error

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as error:
            stop(usage_line(error), error.exit_code)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            stop("interrupted", INTERRUPTED)
        sys.exit(result if isinstance(result, int) else 0)


def for_this_stack(message: str, ctx: click.Context) -> str:
    """A message whose `make TARGET` hints name the stack's env file when it is not .env:
    the command to run next acts on the same stack."""
    from mlstack.cli.options import env_file_of
    from mlstack.cli.settings import DEFAULT_ENV_FILE

    env_file = str(env_file_of(ctx))
    if env_file == DEFAULT_ENV_FILE:
        return message
    return MAKE_HINT.sub(lambda hint: f"{hint.group(0)} ENV_FILE={env_file}", message)


def stop(message: str, status: int = 1) -> NoReturn:
    """Print the one line and exit with status."""
    click.echo(error_line(message), err=True)
    sys.exit(status)
