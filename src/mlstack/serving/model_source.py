"""Where the model comes from: /opt/ml/model, a model.tar.gz inside it, or MODEL_URI.

SageMaker extracts the endpoint's model.tar.gz into /opt/ml/model before the
container starts; a tarball left there whole, or a model under one top-level
folder, are found too. MODEL_URI (e.g. models:/NAME@champion) is downloaded
once per container through MLFLOW_TRACKING_URI, with MLflow's own credential
variables, within INFERENCE_MODEL_FETCH_TIMEOUT seconds in all (MLflow's client
alone retries an unreachable server for minutes). Every worker resolves the
source; a file lock makes the first one do the work and the others reuse its
result. The model's MLmodel file must be YAML: a broken one is one line naming
the file and the parse error, not a traceback.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlstack.core.errors import StartupError
from mlstack.serving.config import Settings

log = logging.getLogger(__name__)

MLMODEL = "MLmodel"
TARBALL = "model.tar.gz"
# SageMaker extracts model.tar.gz here before the container starts.
SAGEMAKER_MODEL_DIR = "/opt/ml/model"
DONE_MARKER = ".mlstack-complete"
# user:password@ (or user@) after a scheme's //: what a URI's credentials look like.
URI_CREDENTIALS = re.compile(r"(?<=//)[^/@\s]+@")


def redact_uri(text: str) -> str:
    """text with the credentials of any URI in it replaced by ***."""
    return URI_CREDENTIALS.sub("***@", text)


def default_cache_root() -> Path:
    """Where extracted and downloaded models go: writable for the image's user."""
    return Path(tempfile.gettempdir()) / "mlstack-inference"


def find_model_dir(root: Path) -> Path | None:
    """The directory holding an MLmodel file: root itself or one folder below it."""
    if (root / MLMODEL).is_file():
        return root
    found = sorted(path.parent for path in root.glob(f"*/{MLMODEL}"))
    return found[0] if len(found) == 1 else None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _once(cache_root: Path, key: str, produce) -> Path:
    """Run produce(dest) once per key across processes; return dest."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    dest = cache_root / digest
    with _locked(cache_root / f"{digest}.lock"):
        if (dest / DONE_MARKER).is_file():
            return dest
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        produce(dest)
        (dest / DONE_MARKER).touch()
    return dest


def _check_member(member: tarfile.TarInfo, dest: Path) -> None:
    """Refuse members that would land outside dest or are not plain files/folders."""
    target = (dest / member.name).resolve()
    if member.name.startswith("/") or not target.is_relative_to(dest.resolve()):
        raise StartupError(f"{TARBALL} holds a path outside the model folder: {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise StartupError(
            f"{TARBALL} holds {member.name!r}, which is neither a file nor a folder; "
            "pack the model folder with plain files only"
        )


def extract_tarball(tarball: Path, dest: Path) -> None:
    """Extract a model.tar.gz safely (no links, devices, absolute or parent paths)."""
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = archive.getmembers()
            for member in members:
                _check_member(member, dest)
            for member in members:
                archive.extract(member, dest, set_attrs=False)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise StartupError(f"cannot extract {tarball}: {error}") from error


def from_tarball(tarball: Path, cache_root: Path) -> Path:
    """The model directory inside an extracted model.tar.gz."""
    stat = tarball.stat()
    key = f"tar:{tarball.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    extracted = _once(cache_root, key, lambda dest: extract_tarball(tarball, dest))
    model_dir = find_model_dir(extracted)
    if model_dir is None:
        raise StartupError(
            f"{tarball} holds no MLflow model: expected MLmodel at its top or in one folder"
        )
    return model_dir


def within(seconds: float, work, what: str) -> None:
    """Run work() in a thread and wait for it at most seconds; its exception is raised here.
    TimeoutError when it is not done by then (the thread is left to the process's exit)."""
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the caller, whatever it is
            outcome["error"] = error

    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(what)
    if "error" in outcome:
        raise outcome["error"]


def download(
    model_uri: str, cache_root: Path, tracking_uri: str | None = None, timeout: float = 30
) -> Path:
    """Download MODEL_URI (models:/NAME@alias, runs:/..., s3://...) into the cache, within
    timeout seconds."""

    def produce(dest: Path) -> None:
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        where = redact_uri(tracking_uri or "-")
        log.info("downloading %s from %s", redact_uri(model_uri), where)
        try:
            within(
                timeout,
                lambda: mlflow.artifacts.download_artifacts(
                    artifact_uri=model_uri, dst_path=str(dest)
                ),
                "model download",
            )
        except TimeoutError:
            raise StartupError(
                f"cannot download MODEL_URI={model_uri} within {timeout:g} s "
                f"(INFERENCE_MODEL_FETCH_TIMEOUT): the tracking server at {where} does not "
                "answer; check MLFLOW_TRACKING_URI and that this container reaches it"
            ) from None
        except (MlflowException, OSError) as error:
            message = redact_uri(str(getattr(error, "message", error)).splitlines()[0][:300])
            raise StartupError(
                f"cannot download MODEL_URI={model_uri}: {message}; check MLFLOW_TRACKING_URI, "
                "the model name and alias, and MLFLOW_TRACKING_USERNAME/PASSWORD if the "
                "server has auth on"
            ) from error

    downloaded = _once(cache_root, f"uri:{model_uri}", produce)
    model_dir = find_model_dir(downloaded)
    if model_dir is None:
        raise StartupError(f"MODEL_URI={model_uri} is not an MLflow model (no MLmodel file)")
    return model_dir


def check_mlmodel(model_dir: Path) -> Path:
    """The model directory, once its MLmodel file parses as YAML; else one line naming the
    file and where the parse failed."""
    import yaml

    path = model_dir / MLMODEL
    try:
        yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise StartupError(
            f"{path} is not valid YAML ({problem}{where}): fix it, or save the model again "
            "with MLflow"
        ) from None
    return model_dir


def resolve_model_dir(
    settings: Settings, cache_root: Path | None = None, model_dir: str = SAGEMAKER_MODEL_DIR
) -> Path:
    """The local MLflow model directory to load, from MODEL_URI or the model folder; its
    MLmodel file checked to parse."""
    return check_mlmodel(find_model(settings, cache_root or default_cache_root(), model_dir))


def find_model(settings: Settings, cache_root: Path, model_dir: str) -> Path:
    """The model directory, from MODEL_URI or the model folder."""
    if settings.model_uri:
        return download(
            settings.model_uri, cache_root, settings.tracking_uri, settings.model_fetch_timeout
        )
    root = Path(model_dir)
    if not root.is_dir():
        raise StartupError(
            f"{root} does not exist: mount an MLflow model there (SageMaker extracts "
            "model.tar.gz into it) or set MODEL_URI, e.g. models:/NAME@champion"
        )
    if (root / MLMODEL).is_file():
        return root
    if (root / TARBALL).is_file():
        return from_tarball(root / TARBALL, cache_root)
    model_dir = find_model_dir(root)
    if model_dir is None:
        raise StartupError(
            f"no MLflow model in {root}: expected {root}/{MLMODEL} or {root}/{TARBALL}, "
            "or set MODEL_URI, e.g. models:/NAME@champion"
        )
    return model_dir
