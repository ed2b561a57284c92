"""Which images the tests use, and building the project's own images."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from testcontainers.core.image import DockerImage

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text().strip()

# The public images a user pulls; `make offline-images` records local
# stand-ins in .images.env, and the environment overrides both.
PUBLIC_IMAGES = {
    "PYTHON_BASE_IMAGE": "python:3.11-slim",
    "MYSQL_IMAGE": "mysql:8.4",
    "MINIO_IMAGE": "minio/minio:RELEASE.2025-09-07T16-13-09Z",
}


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines of a dotenv-style file, ignoring comments and blanks."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


@cache
def image_names() -> dict[str, str]:
    """Public image names, overridden by .images.env, overridden by the environment."""
    names = dict(PUBLIC_IMAGES)
    names.update(read_env_file(ROOT / ".images.env"))
    names.update({key: os.environ[key] for key in PUBLIC_IMAGES if os.environ.get(key)})
    return names


def project_image_tag(name: str) -> str:
    """The local tag of one of the project's images, as `make build` tags it."""
    return f"mlstack/{name}:{VERSION}"


def build_project_image(name: str) -> str:
    """Build images/<name> (from the repository's root, as `make build` does) on the configured
    Python base and return its tag.

    The image is kept after the session, so later builds are layer-cache hits.
    """
    tag = project_image_tag(name)
    image = DockerImage(
        path=ROOT,
        dockerfile_path=f"images/{name}/Dockerfile",
        tag=tag,
        clean_up=False,
        buildargs={"PYTHON_BASE_IMAGE": image_names()["PYTHON_BASE_IMAGE"], "VERSION": VERSION},
    )
    image.build()
    return tag
