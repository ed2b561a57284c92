"""SageMaker SDK v3's training driver, laid out as ModelTrainer hands it to a container.

ModelTrainer (sagemaker==3.27.0: sagemaker-train 1.27.0, sagemaker-core 2.27.0) with
source code does not run the image's entry point. `ModelTrainer._create_training_job_args`
copies its container_drivers/ and sagemaker-core's utils/install_requirements.py (as
scripts/install_requirements.py) into a channel `sm_drivers`, renders sm_train.sh from
templates.py (`_prepare_train_script`), writes sourcecode.json and distributed.json, mounts
the source as the channel `code`, and starts the container with `/bin/bash -c "chmod +x
.../sm_train.sh && .../sm_train.sh"` (train/constants.py). Its local mode
(train/local/local_container.py) writes the config files as below and sets
TRAINING_JOB_NAME. This lays out the same /opt/ml from the SDK's own released files (its
wheels from PyPI, without their dependencies), so the image meets the real driver without the
SDK installed here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

SDK_WHEELS = ("sagemaker-train==1.27.0", "sagemaker-core==2.27.0")  # of sagemaker==3.27.0
DRIVERS = "sagemaker/train/container_drivers"
INSTALL_REQUIREMENTS = "sagemaker/core/utils/install_requirements.py"
INSTANCE_TYPE = "local_cpu"  # Compute(instance_type="local_cpu") in local container mode


def sdk_files(cache: Path) -> Path:
    """The SDK's wheels unpacked under cache (downloaded once per cache)."""
    site = cache / "site"
    if (site / DRIVERS).is_dir():
        return site
    wheels = cache / "wheels"
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*pip, "--dest", str(wheels), *SDK_WHEELS], check=True)
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    return site


def _module(path: Path) -> ModuleType:
    """One of the SDK's modules that import nothing of the SDK (templates, constants)."""
    spec = importlib.util.spec_from_file_location(f"sdk3_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def entrypoint(site: Path) -> list[str]:
    """The container entrypoint ModelTrainer sets with source code."""
    constants = _module(site / "sagemaker/train/constants.py")
    return [*constants.DEFAULT_CONTAINER_ENTRYPOINT, *constants.DEFAULT_CONTAINER_ARGUMENTS]


def write_drivers(site: Path, dest: Path, entry_script: str, requirements: str | None) -> None:
    """The `sm_drivers` channel for SourceCode(source_dir=..., entry_script=...,
    requirements=...): the branch of `_prepare_train_script` for a .py entry script."""
    shutil.copytree(site / DRIVERS, dest, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(site / INSTALL_REQUIREMENTS, dest / "scripts" / "install_requirements.py")
    templates = _module(site / "sagemaker/train/templates.py")
    install = (
        templates.INSTALL_REQUIREMENTS.format(requirements_file=requirements)
        if requirements
        else ""
    )
    script = templates.TRAIN_SCRIPT_TEMPLATE.format(
        working_dir="cd /opt/ml/input/data/code \n",
        install_requirements=install,
        execute_driver=templates.EXECUTE_BASIC_SCRIPT_DRIVER,
    )
    (dest / "sm_train.sh").write_text(script, newline="\n")
    source_code = {
        "source_dir": "/opt/ml/input/data/code",
        "requirements": requirements,
        "entry_script": entry_script,
        "command": None,
    }
    (dest / "sourcecode.json").write_text(json.dumps(source_code))
    (dest / "distributed.json").write_text("{}")


def serialize(value: object) -> str:
    """A hyperparameter as ModelTrainer writes it (common/utils.py `safe_serialize`)."""
    return value if isinstance(value, str) else json.dumps(value)


def write_opt_ml(
    root: Path,
    site: Path,
    source_dir: Path,
    entry_script: str,
    data: Mapping[str, Path],
    hyperparameters: Mapping[str, object],
) -> None:
    """/opt/ml as v3's local container mode gives it to a job with source code: the data
    channels, `code`, `sm_drivers`, and the config files of local_container.py."""
    channels = root / "input" / "data"
    for name, path in data.items():
        shutil.copytree(path, channels / name)
    shutil.copytree(source_dir, channels / "code")
    requirements = "requirements.txt" if (source_dir / "requirements.txt").is_file() else None
    write_drivers(site, channels / "sm_drivers", entry_script, requirements)
    config = root / "input" / "config"
    config.mkdir(parents=True)
    hps = {key: serialize(value) for key, value in hyperparameters.items()}
    (config / "hyperparameters.json").write_text(json.dumps(hps))
    resources = {
        "current_host": "algo-1",
        "hosts": ["algo-1"],
        "network_interface_name": "ethwe",
        "current_instance_type": INSTANCE_TYPE,
    }
    (config / "resourceconfig.json").write_text(json.dumps(resources))
    names = [*data, "code", "sm_drivers"]
    inputs = {name: {"TrainingInputMode": "File"} for name in names}
    (config / "inputdataconfig.json").write_text(json.dumps(inputs))
    for name in ("model", "output/data"):
        (root / name).mkdir(parents=True)
