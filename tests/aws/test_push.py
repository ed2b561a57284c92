"""make push: ECR emulated by moto, images pushed to a real registry on 127.0.0.1.

A tiny image built FROM the configured Python base stands in for the project's images, so
the test is light and depends on no image under construction; the build, platform check,
tagging, login and push are the same code the real images go through.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest
from docker.errors import ImageNotFound

from mlstack import version
from mlstack.cli.aws import push
from mlstack.cli.aws.common import AwsScriptError
from support.images import image_names

pytestmark = pytest.mark.aws

TINY = "tiny"


@pytest.fixture
def tiny_images_dir(tmp_path: Path) -> Path:
    """images/tiny/Dockerfile in a throwaway git repository whose HEAD holds it (clean)."""
    root = tmp_path / "repo"
    context = root / "images" / TINY
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(
        "ARG PYTHON_BASE_IMAGE=python:3.11-slim\n"
        "FROM ${PYTHON_BASE_IMAGE}\n"
        f"RUN echo {uuid.uuid4().hex} > /opt/build-id\n"
    )
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tiny"], check=True)
    return root / "images"


@pytest.fixture
def image_cleanup():
    """Tags the test makes locally, removed afterwards (never anything else)."""
    tags: list[str] = []
    yield tags
    client = docker.from_env()
    for tag in tags:
        with contextlib.suppress(ImageNotFound):
            client.images.remove(tag, noprune=False)


def git_env(images_dir: Path) -> dict[str, str]:
    """Make the script's git calls read the throwaway repository."""
    repo = images_dir.parent
    return {"GIT_DIR": str(repo / ".git"), "GIT_WORK_TREE": str(repo)}


@pytest.mark.docker
def test_push_creates_repositories_and_pushes_by_digest(
    moto, docker_registry, tiny_images_dir, image_cleanup, tmp_path, run_aws
):
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    env = moto.env(
        ECR_REGISTRY_OVERRIDE=docker_registry.host,
        DOCKER_CONFIG=str(docker_config),
        PYTHON_BASE_IMAGE=image_names()["PYTHON_BASE_IMAGE"],
        **git_env(tiny_images_dir),
    )
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    remote = f"{docker_registry.host}/mlstack/{TINY}"
    image_cleanup.extend(
        [f"mlstack/{TINY}:{version()}", f"{remote}:{version()}", f"{remote}:git-{sha}"]
    )

    result = run_aws("push", env, "--images-dir", str(tiny_images_dir), TINY)
    assert result.returncode == 0, result.stderr[-3000:]

    # ECR: the repository with scan on push, immutable tags and the lifecycle policy.
    ecr = moto.client("ecr")
    repo = ecr.describe_repositories(repositoryNames=[f"mlstack/{TINY}"])["repositories"][0]
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    policy = json.loads(
        ecr.get_lifecycle_policy(repositoryName=f"mlstack/{TINY}")["lifecyclePolicyText"]
    )
    assert policy == json.loads(push.lifecycle_policy())

    # What it printed: one URI per tag, then the digest form.
    lines = result.stdout.split()
    assert lines[:2] == [f"{remote}:{version()}", f"{remote}:git-{sha}"]
    digest_uri = lines[2]
    assert digest_uri.startswith(f"{remote}@sha256:")
    digest = digest_uri.partition("@")[2]
    image_cleanup.append(digest_uri)

    # The registry holds both tags on that manifest, behind the token's credentials.
    assert sorted(docker_registry.get(f"mlstack/{TINY}/tags/list").json()["tags"]) == sorted(
        [version(), f"git-{sha}"]
    )
    manifest = docker_registry.get(
        f"mlstack/{TINY}/manifests/{version()}",
        Accept="application/vnd.docker.distribution.manifest.v2+json",
    )
    assert manifest.headers["Docker-Content-Digest"] == digest

    # The login stayed in the command's Docker client: nothing written to DOCKER_CONFIG.
    assert list(docker_config.iterdir()) == []
    # Pulled back by digest, it is the image that was built, for linux/amd64.
    client = docker.from_env()
    client.images.remove(f"{remote}:{version()}")
    client.images.remove(f"{remote}:git-{sha}")
    login = {"username": docker_registry.user, "password": docker_registry.password}
    client.images.pull(digest_uri, auth_config=login)
    image = client.images.get(digest_uri)
    assert image.id == client.images.get(f"mlstack/{TINY}:{version()}").id
    assert (image.attrs["Os"], image.attrs["Architecture"]) == ("linux", "amd64")
    labels = image.attrs["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == sha


def test_push_refuses_uncommitted_sources(moto, tiny_images_dir, run_aws):
    (tiny_images_dir / TINY / "extra.txt").write_text("not committed\n")
    env = moto.env(ECR_REGISTRY_OVERRIDE="127.0.0.1:9", **git_env(tiny_images_dir))
    result = run_aws("push", env, "--images-dir", str(tiny_images_dir), TINY)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("mlstack: error: the image's sources have uncommitted changes")
    )


def test_push_without_credentials_says_so(moto, run_aws):
    env = moto.env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name)
    result = run_aws("push", env, "training")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("mlstack: error: no AWS credentials")


def test_dirty_tag_leaves_the_version_free():
    release = version()
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert push.plan_tags(release, "abc", False, False, now) == [release, "git-abc"]
    assert push.plan_tags(release, "abc", True, True, now) == ["git-abc-dirty-20260102030405"]
    with pytest.raises(AwsScriptError, match="uncommitted"):
        push.plan_tags(release, "abc", True, False, now)


def test_existing_repository_and_tags(moto):
    """The immutable-tag rules, against ECR's own answers (moto's PutImage)."""
    ecr = moto.client("ecr")
    release = version()
    name = "mlstack/training"
    push.ensure_repository(ecr, name)
    push.ensure_repository(ecr, name)  # idempotent
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": "sha256:" + "1" * 64},
        }
    )
    ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag=release)
    ecr.put_image(repositoryName=name, imageManifest=manifest, imageTag="git-abc")

    found = push.tags_in_ecr(ecr, name, [release, "git-abc"])
    assert push.already_pushed(name, [release, "git-abc"], found) == found[release]
    assert push.already_pushed(name, ["0.2.0", "git-def"], {}) is None
    with pytest.raises(AwsScriptError, match="bump VERSION"):
        push.already_pushed(
            name, [release, "git-def"], push.tags_in_ecr(ecr, name, [release, "git-def"])
        )


@pytest.mark.docker
def test_platform_check_refuses_other_architectures(tiny_images_dir, image_cleanup):
    """The classic builder quietly keeps a local base image's platform whatever --platform
    says, so the check after the build is what stops a wrong-architecture push."""
    tag = f"mlstack/{TINY}:platform-check"
    image_cleanup.append(tag)
    push.build(TINY, tiny_images_dir.parent, tag, image_names()["PYTHON_BASE_IMAGE"], "test")
    push.check_platform(tag)  # linux/amd64 here
    with pytest.raises(AwsScriptError, match=r"built for linux/amd64, not linux/arm64"):
        push.check_platform(tag, expected="linux/arm64")


@pytest.mark.docker
def test_push_a_model_image_as_it_is(moto, docker_registry, image_cleanup, tmp_path, run_aws):
    """make push MODEL_IMAGE=name:tag: a locally built model image, under its own tag."""
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    tag = uuid.uuid4().hex[:12]
    local = f"mlstack-test/model-tiny:{tag}"  # stands in for a make build-model-image result
    docker.from_env().images.get(image_names()["PYTHON_BASE_IMAGE"]).tag(local)
    remote = f"{docker_registry.host}/mlstack/model-tiny"
    image_cleanup.extend([local, f"{remote}:{tag}"])
    env = moto.env(ECR_REGISTRY_OVERRIDE=docker_registry.host, DOCKER_CONFIG=str(docker_config))

    result = run_aws("push", env, "--model-image", local)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split()
    assert lines[0] == f"{remote}:{tag}" and lines[1].startswith(f"{remote}@sha256:")
    assert docker_registry.get("mlstack/model-tiny/tags/list").json()["tags"] == [tag]
    repo = moto.client("ecr").describe_repositories(repositoryNames=["mlstack/model-tiny"])
    assert repo["repositories"][0]["imageTagMutability"] == "IMMUTABLE"


def test_push_wants_a_tagged_model_image(moto, run_aws):
    result = run_aws("push", moto.env(), "--model-image", "no-tag")
    assert result.returncode != 0
    assert "MODEL_IMAGE must be name:tag, got 'no-tag'" in result.stderr
