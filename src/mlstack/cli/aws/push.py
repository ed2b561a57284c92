"""`mlstack aws push` (`make push`): build the images for linux/amd64, push them to ECR,
print their URIs.

  mlstack aws push [NAME ...] [--images-dir DIR]     (NAME: tracking-server training inference)

Each image is built from images/NAME/Dockerfile, with the repository's root as its context
(the Dockerfile copies the package from src/), for linux/amd64 (Fargate and SageMaker run amd64; an
image that comes out for another platform is refused, not pushed), tagged with VERSION and
the git commit (git-SHA), and pushed to the ECR repository mlstack/NAME, which is created
when missing with scan on push, immutable tags and a lifecycle policy. Docker logs in with a
token from ECR's GetAuthorizationToken. Tags are immutable: a VERSION already in ECR from
another commit is an error (bump VERSION). A work tree with uncommitted changes under
images/NAME, src/ or VERSION is refused unless PUSH_ALLOW_DIRTY=true, which pushes only a
git-SHA-dirty-TIMESTAMP tag, so VERSION stays free for the committed build.

  mlstack aws push --model-image NAME:TAG

pushes a model image built here (`make build-model-image`) as it is, under its own tag, to
the ECR repository mlstack/<last part of NAME>, with the same repository settings and
platform check.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlstack import ROOT, version
from mlstack.cli import docker_engine
from mlstack.cli.aws.common import (
    ECR_REPOSITORY_PREFIX,
    AwsScriptError,
    account_id,
    boto_session,
    git_revision,
)
from mlstack.cli.errors import first_line
from mlstack.cli.images import IMAGES, build_image, python_base_image
from mlstack.cli.settings import AwsSettings

TARGET_PLATFORM = "linux/amd64"
# Lifecycle: untagged images (left by failed or superseded pushes) go after a week; of the
# rest, the newest KEEP_IMAGES stay, so an image a running service uses is not expired soon.
UNTAGGED_DAYS = 7
KEEP_IMAGES = 50


def lifecycle_policy() -> str:
    """The ECR lifecycle policy every mlstack repository gets (JSON text)."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"expire untagged images after {UNTAGGED_DAYS} days",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": UNTAGGED_DAYS,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"keep the {KEEP_IMAGES} newest images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": KEEP_IMAGES,
                    },
                    "action": {"type": "expire"},
                },
            ]
        }
    )


def plan_tags(release: str, sha: str, dirty: bool, allow_dirty: bool, now: datetime) -> list[str]:
    """The tags to push: VERSION and git-SHA, or one unique dirty tag (see the module doc)."""
    if not dirty:
        return [release, f"git-{sha}"]
    if not allow_dirty:
        raise AwsScriptError(
            "the image's sources have uncommitted changes: commit them so the git-SHA tag "
            "names its source, or set PUSH_ALLOW_DIRTY=true for a one-off dirty tag"
        )
    return [f"git-{sha}-dirty-{now:%Y%m%d%H%M%S}"]


def build(name: str, context: Path, tag: str, base: str, revision: str) -> None:
    """Build context/images/NAME/Dockerfile for TARGET_PLATFORM, its log on stderr."""
    build_image(
        name,
        tag,
        base,
        root=context,
        labels={"org.opencontainers.image.revision": revision},
        platform=TARGET_PLATFORM,
        on_line=lambda line: print(line, file=sys.stderr),
    )


def local_image(tag: str):
    """The local image tag names; one line when it is not here."""
    from docker.errors import ImageNotFound

    try:
        return docker_engine.client().images.get(tag)
    except ImageNotFound:
        raise AwsScriptError(f"no image {tag} here: build it first") from None


def image_platform(tag: str) -> str:
    """os/architecture of a local image, as the engine records it."""
    attrs = local_image(tag).attrs
    return f"{attrs['Os']}/{attrs['Architecture']}"


def check_platform(tag: str, expected: str = TARGET_PLATFORM) -> None:
    """Refuse an image built for another platform (e.g. arm64 on an Apple-silicon laptop)."""
    found = image_platform(tag)
    if found != expected:
        raise AwsScriptError(
            f"{tag} was built for {found}, not {expected}, which Fargate and SageMaker run: "
            f"enable {expected} emulation in Docker (QEMU/binfmt, or Docker Desktop's "
            f"Rosetta) with a {expected} PYTHON_BASE_IMAGE, or build on an amd64 machine"
        )


def ensure_repository(ecr, name: str) -> dict:
    """The ECR repository, created when missing with scan on push, immutable tags, a
    lifecycle policy and encryption; an existing one keeps its settings (warned about)."""
    try:
        repository = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except ecr.exceptions.RepositoryNotFoundException:
        repository = ecr.create_repository(
            repositoryName=name,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
            encryptionConfiguration={"encryptionType": "AES256"},
            tags=[{"Key": "project", "Value": "mlstack"}],
        )["repository"]
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=lifecycle_policy())
        print(f"created ECR repository {name}", file=sys.stderr)
        return repository
    if repository.get("imageTagMutability") != "IMMUTABLE":
        print(f"warning: ECR repository {name} has mutable tags", file=sys.stderr)
    if not repository.get("imageScanningConfiguration", {}).get("scanOnPush"):
        print(f"warning: ECR repository {name} does not scan on push", file=sys.stderr)
    try:
        ecr.get_lifecycle_policy(repositoryName=name)
    except ecr.exceptions.LifecyclePolicyNotFoundException:
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=lifecycle_policy())
    return repository


def tags_in_ecr(ecr, repository: str, tags: list[str]) -> dict[str, str]:
    """tag -> image digest for those of `tags` that the repository already has."""
    found = {}
    for tag in tags:
        try:
            details = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        except ecr.exceptions.ImageNotFoundException:
            continue
        found[tag] = details["imageDetails"][0]["imageDigest"]
    return found


def already_pushed(repository: str, tags: list[str], found: dict[str, str]) -> str | None:
    """The digest when every tag is already on one image; None when none is; else an error."""
    if not found:
        return None
    if set(found) == set(tags) and len(set(found.values())) == 1:
        return next(iter(found.values()))
    taken = ", ".join(sorted(found))
    raise AwsScriptError(
        f"{repository} already has {taken} on another image and its tags are immutable: "
        "bump VERSION (or push from the commit that made it)"
    )


def registry_login(ecr, override: str | None) -> str:
    """Log the Docker client in with an ECR authorization token; returns the registry host.

    The login lives in this process's client only: nothing is written to ~/.docker."""
    from docker.errors import APIError

    data = ecr.get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = override or data["proxyEndpoint"].removeprefix("https://").removeprefix("http://")
    try:
        docker_engine.client().login(username=user, password=password, registry=host, reauth=True)
    except APIError as error:
        raise AwsScriptError(
            f"docker login to {host} failed: {first_line(error.explanation or error)}"
        ) from None
    return host


@dataclass
class Pushed:
    """One image in the registry."""

    name: str
    uris: list[str]
    digest_uri: str


def push_tags(local_tag: str, remote: str, tags: list[str]) -> str:
    """Tag and push; return the pushed manifest's digest (sha256:...)."""
    api = docker_engine.client().api
    for tag in tags:
        api.tag(local_tag, remote, tag)
        for chunk in api.push(remote, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise AwsScriptError(f"pushing {remote}:{tag} failed: {first_line(chunk['error'])}")
            if chunk.get("status") and not chunk.get("progressDetail"):
                print(f"{remote}:{tag}: {chunk['status']}", file=sys.stderr)
    for ref in local_image(local_tag).attrs.get("RepoDigests") or []:
        repo, _, digest = ref.partition("@")
        if repo == remote:
            return digest
    raise AwsScriptError(f"docker reported no digest for {remote} after the push")


@dataclass
class Plan:
    """What to build and which tags to push, decided before anything is built."""

    name: str
    context: Path  # the repository's root; the Dockerfile is images/NAME/Dockerfile in it
    revision: str
    tags: list[str]


def plan_image(name: str, images_dir: Path, allow_dirty: bool) -> Plan:
    """The image's build context, its git revision label and its tags."""
    context = images_dir.parent
    dockerfile = images_dir / name / "Dockerfile"
    if not dockerfile.is_file():
        raise AwsScriptError(f"{dockerfile} does not exist: unknown image {name!r}")
    sha, dirty = git_revision([images_dir / name, context / "src", context / "VERSION"])
    tags = plan_tags(version(), sha, dirty, allow_dirty, datetime.now(UTC))
    return Plan(name, context, sha + ("-dirty" if dirty else ""), tags)


def push_image(ecr, plan: Plan, registry: str, base_image: str) -> Pushed:
    """Build (unless ECR already has it), check the platform, push; return the URIs."""
    repository = f"{ECR_REPOSITORY_PREFIX}/{plan.name}"
    ensure_repository(ecr, repository)
    remote = f"{registry}/{repository}"
    digest = already_pushed(repository, plan.tags, tags_in_ecr(ecr, repository, plan.tags))
    if digest:
        print(f"{repository}: {', '.join(plan.tags)} already in ECR, not pushed", file=sys.stderr)
    else:
        local_tag = f"{repository}:{version()}"
        build(plan.name, plan.context, local_tag, base_image, plan.revision)
        check_platform(local_tag)
        digest = push_tags(local_tag, remote, plan.tags)
    return Pushed(plan.name, [f"{remote}:{tag}" for tag in plan.tags], f"{remote}@{digest}")


def split_image(local_tag: str) -> tuple[str, str]:
    """name and tag of a local image reference; checked before anything is pushed."""
    name, _, tag = local_tag.rpartition(":")
    if not name or not tag or "/" in tag:
        raise AwsScriptError(f"MODEL_IMAGE must be name:tag, got {local_tag!r}")
    return name, tag


def push_local_image(ecr, local_tag: str, registry: str) -> Pushed:
    """Push an image built here (a model image) under its own tag; return the URIs."""
    name, tag = split_image(local_tag)
    check_platform(local_tag)
    repository = f"{ECR_REPOSITORY_PREFIX}/{name.rsplit('/', 1)[-1]}"
    ensure_repository(ecr, repository)
    remote = f"{registry}/{repository}"
    digest = already_pushed(repository, [tag], tags_in_ecr(ecr, repository, [tag]))
    if digest:
        print(
            f"{repository}:{tag} already in ECR, not pushed (tags are immutable: give a new "
            "build a new MODEL_IMAGE tag)",
            file=sys.stderr,
        )
    else:
        digest = push_tags(local_tag, remote, [tag])
    return Pushed(name, [f"{remote}:{tag}"], f"{remote}@{digest}")


def main(
    settings: AwsSettings,
    names: list[str],
    images_dir: Path = ROOT / "images",
    model_image: str | None = None,
) -> None:
    """Push the named images (all three by default), or one model image; print the URIs."""
    names = names or list(IMAGES)
    session = boto_session(settings)
    account_id(session)  # a clear error without credentials, before any build
    ecr = session.client("ecr")
    if model_image:
        split_image(model_image)
    plans = (
        [] if model_image else [plan_image(n, images_dir, settings.push_allow_dirty) for n in names]
    )
    registry = registry_login(ecr, settings.ecr_registry_override or None)
    base_image = python_base_image(settings.python_base_image)
    pushes = [lambda plan=plan: push_image(ecr, plan, registry, base_image) for plan in plans]
    if model_image:
        pushes.append(lambda: push_local_image(ecr, model_image, registry))
    for push_one in pushes:
        pushed = push_one()
        for uri in pushed.uris:
            print(uri)
        print(pushed.digest_uri)
