"""Databases as users have them: MySQL flags like mysql:8.4 / RDS, and the MLflow 2.x image.

The stand-in's own defaults may differ (they are being aligned with mysql:8.4); these
helpers pass every setting the tests depend on explicitly, so they hold either way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import docker
from testcontainers.core.image import DockerImage

from support.images import image_names

MLFLOW2_DIR = Path(__file__).parent / "mlflow2"
CASE_INSENSITIVE = "utf8mb4_general_ci"  # MariaDB's nearest to MySQL 8.4's utf8mb4_0900_ai_ci
# Binary logging on, as in mysql:8.4 and on RDS with backups; the trust that MLflow 3's
# trigger needs, as the compose flags and the RDS parameter group set it; and a
# case-insensitive default collation. Flags both mysql:8.4 and MariaDB accept.
MYSQL_84_FLAGS = (
    "--log-bin=mysql-bin",
    "--server-id=1",
    "--log-bin-trust-function-creators=1",
    "--character-set-server=utf8mb4",
    f"--collation-server={CASE_INSENSITIVE}",
)


def build_mlflow2_image() -> str:
    """The MLflow 2.6.0 server + 2.12.1 client image; kept, so later runs hit the layer cache."""
    inputs = hashlib.sha256()  # the tag names the build's inputs: edits rebuild it
    for path in [*sorted(MLFLOW2_DIR.glob("*.txt")), MLFLOW2_DIR / "Dockerfile"]:
        inputs.update(path.read_bytes())
    tag = f"mlstack-test/mlflow2:{inputs.hexdigest()[:12]}"
    if not docker.from_env().images.list(name=tag):
        DockerImage(
            path=MLFLOW2_DIR,
            tag=tag,
            clean_up=False,
            buildargs={"PYTHON_BASE_IMAGE": image_names()["PYTHON_BASE_IMAGE"]},
        ).build()
    return tag
