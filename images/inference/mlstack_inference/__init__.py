"""mlstack inference server: SageMaker's hosting contract for MLflow pyfunc models."""

from pathlib import Path


def _release() -> str:
    """The project's VERSION: /opt/mlstack/VERSION in the image (its Dockerfile writes it), the
    repository's VERSION file in a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "VERSION", package.parents[2] / "VERSION"):
        if candidate.is_file():
            return candidate.read_text().strip()
    return "unknown"


__version__ = _release()
