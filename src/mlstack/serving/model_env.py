"""The model's own environment against the image's: read it, compare, act on a policy.

An MLflow model records what it was saved with: requirements.txt, python_env.yaml
(which usually points at requirements.txt) and conda.yaml (MLflow model format,
"Model dependencies"). At start-up the entrypoint compares the packages that decide
the model's behaviour (its flavour's library, numpy, pandas, mlflow) with this
image's, logs one line, hands the facts to the workers for GET /environment, and
applies INFERENCE_ENV_POLICY:

- strict (default): refuse to start when the flavour library's major.minor differs;
- warn: serve anyway, with a warning;
- model: serve in a venv of exactly the model's requirements: the prebuilt one of a
  model image (INFERENCE_MODEL_VENV), else one created once under INFERENCE_ENV_CACHE
  (needs PyPI; the time it takes is logged).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import MutableMapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mlstack.core.errors import StartupError
from mlstack.serving.config import Settings

log = logging.getLogger("mlstack.serving")

PREBUILT_VARIABLE = "INFERENCE_MODEL_VENV"  # set by model images: the venv built into them
# The entrypoint passes the facts to the workers (and to itself after re-exec) here; the
# workers and the re-executed entrypoint read them back through Settings.
REPORT_VARIABLE = "MLSTACK_MODEL_ENVIRONMENT"
ACTIVE_VARIABLE = "MLSTACK_MODEL_VENV_ACTIVE"
# The image's own pins, copied in by the Dockerfile: the server-only packages a model
# venv needs besides the model's requirements come from here, at the image's versions.
IMAGE_REQUIREMENTS = Path("/opt/mlstack/requirements.txt")
# pydantic-settings and tenacity: the server's own code (config, lifecycle) imports them.
SERVER_ONLY = (
    "gunicorn",
    "uvicorn",
    "uvicorn-worker",
    "uvloop",
    "httptools",
    "pydantic-settings",
    "tenacity",
    "prometheus-client",  # metrics.py
    "boto3",  # capture.py's S3 writes
)
# MLflow flavour -> the library whose version decides how the model loads and predicts.
FLAVOUR_LIBRARIES = {
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "statsmodels": "statsmodels",
    "pytorch": "torch",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "onnx": "onnxruntime",
    "prophet": "prophet",
}
ALWAYS_COMPARED = ("numpy", "pandas", "mlflow")
FIX = (
    "build a model image with its own environment (make build-model-image MODEL_URI=...), "
    "retrain with this image's versions, or set INFERENCE_ENV_POLICY=model (installs its "
    "requirements at start-up, needs PyPI) or warn (serve anyway)"
)


@dataclass(frozen=True)
class Package:
    """One compared package: the version the model pins and the one installed here."""

    name: str
    wanted: str | None
    installed: str | None

    @property
    def status(self) -> str:
        """same, differs, unpinned (the model names no exact version) or missing here."""
        if self.installed is None:
            return "missing"
        if self.wanted is None:
            return "unpinned"
        return "same" if _version(self.wanted) == _version(self.installed) else "differs"

    def describe(self) -> str:
        """e.g. 'scikit-learn model 1.5.2 here 1.9.1 (differs)'."""
        wanted, here = self.wanted or "-", self.installed or "-"
        return f"{self.name} model {wanted} here {here} ({self.status})"


@dataclass
class ModelEnvironment:
    """What the model was saved with, next to what this Python has."""

    source: str
    requirements: list[str]
    flavour: str | None
    flavour_library: str | None
    python_model: str | None
    python_here: str
    packages: list[Package] = field(default_factory=list)

    def package(self, name: str) -> Package | None:
        """The compared package of that name, if compared."""
        return next((p for p in self.packages if p.name == name), None)

    def differing(self) -> list[Package]:
        """Compared packages whose pinned version is not the installed one (or missing)."""
        return [p for p in self.packages if p.status in ("differs", "missing")]

    def flavour_mismatch(self) -> Package | None:
        """The flavour library, if its major.minor here differs from the model's."""
        package = self.package(self.flavour_library) if self.flavour_library else None
        if package is None or package.wanted is None:
            return None
        if package.installed is None:
            return package
        return package if _minor(package.wanted) != _minor(package.installed) else None

    def line(self) -> str:
        """The one log line: every compared package and the Python versions."""
        parts = [p.describe() for p in self.packages]
        parts.append(f"python model {self.python_model or '-'} here {self.python_here}")
        return f"model environment ({self.source}, flavour {self.flavour or '-'}): " + "; ".join(
            parts
        )

    def as_dict(self, policy: str, venv: str | None) -> dict:
        """The JSON of GET /environment."""
        facts = asdict(self)
        facts["packages"] = [{**asdict(p), "status": p.status} for p in self.packages]
        facts.update(policy=policy, serving_python=sys.prefix, model_venv=venv)
        return facts


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _minor(text: str) -> tuple[int, ...] | str:
    version = _version(text)
    return version.release[:2] if version else text


def installed_version(name: str) -> str | None:
    """The version installed in this Python; mlflow counts as mlflow-skinny and back."""
    candidates = ("mlflow", "mlflow-skinny") if name in ("mlflow", "mlflow-skinny") else (name,)
    for candidate in candidates:
        try:
            return metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return None


def _requirement_lines(text: str) -> list[str]:
    return [
        line.split(" #")[0].strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]


def read_requirements(model_dir: Path) -> tuple[str, list[str]]:
    """The model's pip requirements and the file they came from (MLflow's three files)."""
    requirements = model_dir / "requirements.txt"
    if requirements.is_file():
        return "requirements.txt", _requirement_lines(requirements.read_text())
    python_env = model_dir / "python_env.yaml"
    if python_env.is_file():
        deps = (yaml.safe_load(python_env.read_text()) or {}).get("dependencies") or []
        return "python_env.yaml", [d for d in deps if isinstance(d, str) and not d.startswith("-")]
    conda = model_dir / "conda.yaml"
    if conda.is_file():
        for dep in (yaml.safe_load(conda.read_text()) or {}).get("dependencies") or []:
            if isinstance(dep, dict) and "pip" in dep:
                return "conda.yaml", [d for d in dep["pip"] if not str(d).startswith("-")]
    return "none", []


def _pins(requirements: list[str]) -> dict[str, str | None]:
    """name -> exact version (== pin) or None, for every parsable requirement."""
    pins: dict[str, str | None] = {}
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        specs = list(requirement.specifier)
        exact = specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None
        name = canonicalize_name(requirement.name)
        pins["mlflow" if name == "mlflow-skinny" else name] = exact
    return pins


def _python_version(model_dir: Path, mlmodel: dict) -> str | None:
    python_env = model_dir / "python_env.yaml"
    if python_env.is_file():
        version = (yaml.safe_load(python_env.read_text()) or {}).get("python")
        if version:
            return str(version)
    return (mlmodel.get("flavors", {}).get("python_function") or {}).get("python_version")


def inspect_model(model_dir: Path) -> ModelEnvironment:
    """Read the model's environment files and compare them with this Python's packages."""
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
    flavours = mlmodel.get("flavors") or {}
    flavour = next((name for name in flavours if name in FLAVOUR_LIBRARIES), None)
    library = FLAVOUR_LIBRARIES.get(flavour) if flavour else None
    source, requirements = read_requirements(model_dir)
    pins = _pins(requirements)
    if library and pins.get(library) is None:
        # e.g. sklearn_version: MLmodel records the library even when requirements do not.
        pins[library] = (flavours.get(flavour) or {}).get(f"{flavour}_version") or pins.get(library)
    if "mlflow" not in pins and mlmodel.get("mlflow_version"):
        pins["mlflow"] = str(mlmodel["mlflow_version"])
    names = [library] if library else []
    names += [name for name in ALWAYS_COMPARED if name not in names]
    return ModelEnvironment(
        source=source,
        requirements=requirements,
        flavour=flavour,
        flavour_library=library,
        python_model=_python_version(model_dir, mlmodel),
        python_here=".".join(map(str, sys.version_info[:3])),
        packages=[Package(name, pins.get(name), installed_version(name)) for name in names],
    )


# --- the model's own venv --------------------------------------------------------------


def _server_pins(image_requirements: Path, model_names: set[str]) -> list[str]:
    """Serving-only packages (gunicorn...) at the image's versions, unless the model pins them."""
    if not image_requirements.is_file():
        return [f"gunicorn=={installed_version('gunicorn')}"]
    pins = []
    for line in _requirement_lines(image_requirements.read_text()):
        name = canonicalize_name(Requirement(line).name)
        if name in SERVER_ONLY and name not in model_names:
            pins.append(line)
    return pins


def venv_requirements(requirements: list[str], image_requirements: Path = IMAGE_REQUIREMENTS):
    """What a venv for the model installs: its requirements plus the server's own packages.

    `mlflow` becomes `mlflow-skinny` at the same version: the same pyfunc loader without
    the tracking server's dependencies. Full mlflow before 2.15 also pinned numpy<2, which
    skinny does not; that bound is kept when the model leaves numpy open.
    """
    out: list[str] = []
    names: set[str] = set()
    mlflow_version: str | None = None
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            out.append(line)
            continue
        name = canonicalize_name(requirement.name)
        names.add(name)
        if name == "mlflow":
            names.add("mlflow-skinny")
            requirement.name = "mlflow-skinny"
            requirement.extras = set()
            exact = [s.version for s in requirement.specifier if s.operator == "=="]
            mlflow_version = exact[0] if exact else None
        out.append(str(requirement))
    old = _version(mlflow_version or "")
    if old is not None and old < Version("2.15") and "numpy" not in names:
        out.append("numpy<2")
    return out + _server_pins(image_requirements, names)


def env_key(requirements: list[str]) -> str:
    """Names a venv by what it holds and the Python it runs on."""
    import hashlib

    text = "\n".join([sys.version, *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_root(settings: Settings) -> Path:
    """Where `model` creates venvs (INFERENCE_ENV_CACHE)."""
    from mlstack.serving.model_source import default_cache_root

    return Path(settings.env_cache or default_cache_root() / "envs")


def create_venv(dest: Path, requirements: list[str]) -> None:
    """python -m venv dest, then pip install exactly these requirements; one-line errors."""
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(dest)],
        [str(dest / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "--only-binary=:all:", *requirements],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
            raise StartupError(
                f"cannot create the model's environment ({' '.join(step[:3])}...): "
                f"{lines[-1][:300]}; where the endpoint has no network, build a model image "
                "(make build-model-image) or set INFERENCE_ENV_POLICY=warn"
            )


def ensure_venv(requirements: list[str], settings: Settings) -> Path:
    """The model's venv: the model image's prebuilt one, else created once in the cache."""
    prebuilt = settings.model_venv
    if prebuilt:
        if not (Path(prebuilt) / "bin" / "python").is_file():
            raise StartupError(f"{PREBUILT_VARIABLE}={prebuilt} is not a venv: rebuild the image")
        log.info("model environment: using the prebuilt venv %s", prebuilt)
        return Path(prebuilt)
    from mlstack.serving.model_source import DONE_MARKER, _once

    root = cache_root(settings)
    started = time.monotonic()
    venv = _once(root, "venv:" + env_key(requirements), lambda d: create_venv(d, requirements))
    took = time.monotonic() - started
    if took > 1:
        log.info("model environment: created %s in %.1f s (%s)", venv, took, " ".join(requirements))
    else:
        log.info("model environment: reusing %s (%s)", venv, DONE_MARKER)
    return venv


# --- the policy ------------------------------------------------------------------------


def decide(found: ModelEnvironment, policy: str) -> str:
    """serve, or venv (serve in the model's own venv); StartupError when strict refuses."""
    mismatch = found.flavour_mismatch()
    if policy == "model":
        return "venv" if found.differing() else "serve"
    if mismatch is not None and policy == "strict":
        raise StartupError(
            f"the model was saved with {mismatch.name} {mismatch.wanted}, this image has "
            f"{mismatch.installed or 'none'} (INFERENCE_ENV_POLICY=strict refuses a different "
            f"{mismatch.name} minor version): {FIX}"
        )
    if found.differing():
        names = ", ".join(p.describe() for p in found.differing())
        log.warning("serving a model saved with other versions (%s): %s", names, FIX)
    return "serve"


def prepare(
    model_dir: Path, settings: Settings, env: MutableMapping[str, str] | None = None
) -> list[str] | None:
    """Compare, log, apply the policy (settings.env_policy). Returns the command to re-exec
    in the model's venv, or None to serve here; sets REPORT_VARIABLE for the workers either
    way. env is written (and its PATH extended): the environment the workers and the venv's
    entrypoint inherit (os.environ, unless a test passes its own)."""
    env = os.environ if env is None else env  # written for the children (PATH: extended)
    policy = settings.env_policy
    found = inspect_model(model_dir)
    log.info("%s", found.line())
    active = settings.model_venv_active
    if active:  # already re-executed in the model's venv: serve here whatever remains
        if found.differing():
            log.warning("the model's venv still differs: %s", found.line())
        env[REPORT_VARIABLE] = json.dumps(found.as_dict(policy, active))
        return None
    if decide(found, policy) == "serve":
        env[REPORT_VARIABLE] = json.dumps(found.as_dict(policy, None))
        return None
    venv = ensure_venv(venv_requirements(found.requirements), settings)
    env[ACTIVE_VARIABLE] = str(venv)
    # The re-executed entrypoint's PATH: the venv's bin first, then the PATH it inherits.
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return [str(venv / "bin" / "python"), "-m", "mlstack.serving.entrypoint", "serve"]
