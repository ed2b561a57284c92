"""Container entrypoint: `docker run IMAGE serve`, as SageMaker hosting starts it.

Checks the settings and that a model source is there, then execs gunicorn. Every
failure before serving prints one line, "mlstack-inference: error: ...", and
exits non-zero.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from mlstack.core.errors import StartupError
from mlstack.serving import model_env, threads
from mlstack.serving.config import Settings, load_settings
from mlstack.serving.model_source import (
    MLMODEL,
    SAGEMAKER_MODEL_DIR,
    TARBALL,
    find_model_dir,
    resolve_model_dir,
)

log = logging.getLogger("mlstack.serving")

REGISTRY_SCHEMES = ("models:/", "runs:/")


def preflight(settings: Settings, model_dir: str = SAGEMAKER_MODEL_DIR) -> str:
    """Check that a model source exists (nothing is downloaded); describe it."""
    if settings.model_uri:
        if settings.model_uri.startswith(REGISTRY_SCHEMES) and not settings.tracking_uri:
            raise StartupError(
                f"MODEL_URI={settings.model_uri} needs MLFLOW_TRACKING_URI, the tracking "
                "server to resolve it through (e.g. http://tracking-server:5000)"
            )
        return f"MODEL_URI={settings.model_uri}"
    root = Path(model_dir)
    if (root / TARBALL).is_file() or (root.is_dir() and find_model_dir(root) is not None):
        return str(root)
    raise StartupError(
        f"no MLflow model in {root}: expected {root}/{MLMODEL} or {root}/{TARBALL} "
        "(SageMaker extracts the model there), or set MODEL_URI, e.g. models:/NAME@champion"
    )


def gunicorn_command() -> list[str]:
    """gunicorn with the image's config, one app per worker."""
    return [
        "gunicorn",
        "--config",
        "python:mlstack.serving.gunicorn_conf",
        "mlstack.serving.app:create_app()",
    ]


def main(argv: list[str] | None = None) -> None:
    """Serve, or exit non-zero with one line saying what is wrong."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] != "serve":
        print(
            f"mlstack-inference: error: unknown command {args[0]!r}: this image serves "
            "models; run it as `docker run IMAGE serve`",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)
    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
        )
        source = preflight(settings)
        # The model's own environment against the image's (INFERENCE_ENV_POLICY): may
        # refuse, or hand over to the model's venv, which runs this entrypoint again.
        in_model_venv = model_env.prepare(resolve_model_dir(settings), settings)
    except StartupError as error:
        print(f"mlstack-inference: error: {error}", file=sys.stderr, flush=True)
        sys.exit(1)
    log.info(
        "serving %s on port %d with %d workers (timeout %d s, payloads up to %s MB)",
        source,
        settings.port,
        settings.workers,
        settings.timeout,
        settings.max_payload_mb or "any",
    )
    if in_model_venv:  # model_env.prepare has set os.environ for the venv's entrypoint
        os.execv(in_model_venv[0], in_model_venv)
    # Before any worker imports the model's libraries: they read these once, when they load.
    log.info("%s", threads.configure(settings.workers, settings.model_threads))
    command = gunicorn_command()
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
