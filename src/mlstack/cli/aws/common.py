"""What every AWS command shares: boto3 sessions, ECR and SageMaker names, the git revision,
the SDK's logging, its error."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

from mlstack import ROOT, version
from mlstack.cli.errors import CliError
from mlstack.cli.settings import AwsSettings

ECR_REPOSITORY_PREFIX = "mlstack"
NAME_LIMIT = 63  # SageMaker model, config and endpoint names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}
# SDK defaults config: no usage telemetry to AWS from these commands.
SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


class AwsScriptError(CliError):
    """A problem the user can fix; the message says what is wrong and how to fix it."""


def sagemaker_name(*parts: str) -> str:
    """Parts joined with '-', reduced to what SageMaker accepts in resource names."""
    text = "-".join(parts)
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")
    return text[:NAME_LIMIT].rstrip("-") or "mlstack"


def endpoint_name(settings: AwsSettings) -> str:
    """ENDPOINT_NAME, else mlstack-MODEL_NAME, as deploy-endpoint names the endpoint."""
    return sagemaker_name(settings.endpoint_name or f"mlstack-{settings.model_name}")


def boto_session(settings: AwsSettings, require_region: bool = True):
    """A boto3 session honouring AWS_PROFILE and AWS_REGION; AWS_ENDPOINT_URL is read by boto3."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        session = boto3.Session(
            profile_name=settings.aws_profile or None, region_name=settings.aws_region or None
        )
    except ProfileNotFound as error:
        raise AwsScriptError(f"{error}: check AWS_PROFILE against ~/.aws/config") from None
    if require_region and not session.region_name:
        raise AwsScriptError(
            "no AWS region: set AWS_REGION (e.g. eu-west-1) or a region in your AWS_PROFILE"
        )
    return session


def account_id(session) -> str:
    """The account the credentials belong to; a clear error when there are none."""
    from botocore.exceptions import NoCredentialsError

    if session.get_credentials() is None:
        raise AwsScriptError(
            "no AWS credentials: set AWS_PROFILE (after `aws sso login` or `aws configure`) "
            "or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    try:
        return session.client("sts").get_caller_identity()["Account"]
    except NoCredentialsError:
        raise AwsScriptError("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID") from None


def ecr_image_uri(session, name: str, tag: str | None = None) -> str:
    """ACCOUNT.dkr.ecr.REGION.amazonaws.com/mlstack/NAME:TAG, as `make push` names it."""
    host = f"{account_id(session)}.dkr.ecr.{session.region_name}.amazonaws.com"
    return f"{host}/{ECR_REPOSITORY_PREFIX}/{name}:{tag or version()}"


def git_revision(paths: list[Path], root: Path = ROOT) -> tuple[str, bool]:
    """(short commit SHA, whether `paths` hold changes or untracked files not in that commit)."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", *map(str, paths)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise AwsScriptError(
            f"cannot read the git commit of {root} ({error}): images are tagged with it"
        ) from None
    return sha, bool(status.strip())


def sagemaker_sdk_logging() -> None:
    """Send the SageMaker SDK's log to stderr (it writes its config notes to stdout, where
    these scripts print only their results); call before importing sagemaker."""
    logger = logging.getLogger("sagemaker")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    # Logged before the SDK checks TelemetryOptOut, which these scripts set: misleading here.
    logging.getLogger("sagemaker.core.telemetry").setLevel(logging.WARNING)


def source_code(settings: AwsSettings):
    """SOURCE_DIR and ENTRY_POINT as the SDK v3's `SourceCode` (a user's training script in
    the training image), or None for the built-in model. Its requirements.txt, when there is
    one, is named: v3 installs a requirements file only when told (v2 found it by itself)."""
    source_dir, entry_point = settings.source_dir, settings.entry_point
    if not source_dir and not entry_point:
        return None
    if not source_dir or not entry_point:
        raise AwsScriptError(
            "set both SOURCE_DIR (the script's directory) and ENTRY_POINT (the script in it), "
            "or neither for the built-in model"
        )
    directory = Path(source_dir).resolve()
    if not (directory / entry_point).is_file():
        raise AwsScriptError(f"{entry_point} is not a file in SOURCE_DIR {source_dir}")
    from sagemaker.train.configs import SourceCode

    requirements = "requirements.txt" if (directory / "requirements.txt").is_file() else None
    return SourceCode(
        source_dir=str(directory), entry_script=entry_point, requirements=requirements
    )
