"""The model's environment against the image's: reading, comparing, the policy (no Docker)."""

from __future__ import annotations

import json
import logging
from importlib.metadata import version
from pathlib import Path

import pytest

from mlstack.core.errors import StartupError
from mlstack.serving import model_env
from mlstack.serving.config import load_settings

IMAGE_REQUIREMENTS = Path(__file__).parents[2] / "images" / "inference" / "requirements.txt"
OLD_REQUIREMENTS = "mlflow==2.12.1\ncloudpickle==3.1.3\npandas==2.3.3\nscikit-learn==1.5.2\n"


def write_model(path: Path, requirements: str | None = OLD_REQUIREMENTS, **files: str) -> Path:
    """A model folder with an sklearn MLmodel and the given environment files."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        "    python_version: 3.11.2\n  sklearn:\n    sklearn_version: 1.5.2\n"
        "mlflow_version: 2.12.1\n"
    )
    if requirements is not None:
        (path / "requirements.txt").write_text(requirements)
    for name, text in files.items():
        (path / name.replace("_yaml", ".yaml")).write_text(text)
    return path


def statuses(found: model_env.ModelEnvironment) -> dict[str, str]:
    return {p.name: p.status for p in found.packages}


def test_old_model_differs_from_this_python(tmp_path: Path) -> None:
    found = model_env.inspect_model(write_model(tmp_path))
    assert found.source == "requirements.txt" and found.flavour_library == "scikit-learn"
    assert statuses(found) == {
        "scikit-learn": "differs",
        "numpy": "unpinned",
        "pandas": "differs",
        "mlflow": "differs",
    }
    assert "scikit-learn model 1.5.2 here " + version("scikit-learn") in found.line()
    assert found.flavour_mismatch().wanted == "1.5.2"


def test_python_env_and_conda_files_are_read(tmp_path: Path) -> None:
    python_env = "python: 3.10.4\ndependencies:\n- scikit-learn==1.5.2\n- numpy==1.26.4\n"
    found = model_env.inspect_model(write_model(tmp_path / "a", None, python_env_yaml=python_env))
    assert found.source == "python_env.yaml" and found.python_model == "3.10.4"
    assert found.package("numpy").wanted == "1.26.4"
    conda = "dependencies:\n- python=3.11\n- pip:\n  - mlflow-skinny==2.12.1\n  - pandas==2.2.3\n"
    found = model_env.inspect_model(write_model(tmp_path / "b", None, conda_yaml=conda))
    assert found.source == "conda.yaml"
    assert found.package("mlflow").wanted == "2.12.1"
    assert found.package("pandas").wanted == "2.2.3"
    # No requirement names scikit-learn: MLmodel's sklearn_version stands in.
    assert found.package("scikit-learn").wanted == "1.5.2"


def test_strict_refuses_in_one_line_naming_both_versions(tmp_path: Path) -> None:
    found = model_env.inspect_model(write_model(tmp_path))
    with pytest.raises(StartupError) as raised:
        model_env.decide(found, "strict")
    message = str(raised.value)
    assert "\n" not in message
    assert f"scikit-learn 1.5.2, this image has {version('scikit-learn')}" in message
    assert "make build-model-image" in message and "INFERENCE_ENV_POLICY=model" in message


def test_a_patch_difference_is_served_by_strict(tmp_path: Path) -> None:
    here = version("scikit-learn")
    major, minor, *_ = here.split(".")
    pins = f"scikit-learn=={major}.{minor}.999\nmlflow=={version('mlflow')}\n"
    found = model_env.inspect_model(write_model(tmp_path, pins))
    assert found.flavour_mismatch() is None
    assert model_env.decide(found, "strict") == "serve"


def test_warn_serves_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    found = model_env.inspect_model(write_model(tmp_path))
    with caplog.at_level(logging.WARNING, "mlstack.serving"):
        assert model_env.decide(found, "warn") == "serve"
    assert "serving a model saved with other versions" in caplog.text


def test_model_policy_wants_a_venv_only_when_versions_differ(tmp_path: Path) -> None:
    assert model_env.decide(model_env.inspect_model(write_model(tmp_path / "a")), "model") == "venv"
    same = "".join(f"{n}=={version(n)}\n" for n in ("scikit-learn", "pandas", "numpy"))
    found = model_env.inspect_model(write_model(tmp_path / "b", same + "mlflow==3.17.2\n"))
    assert model_env.decide(found, "model") == "serve"


def test_policy_variable() -> None:
    assert load_settings({}).env_policy == "strict"
    assert load_settings({"INFERENCE_ENV_POLICY": " Warn "}).env_policy == "warn"
    with pytest.raises(StartupError, match="POLICY must be strict, warn or model, got 'lax'"):
        load_settings({"INFERENCE_ENV_POLICY": "lax"})


def test_venv_requirements() -> None:
    pins = model_env.venv_requirements(OLD_REQUIREMENTS.split(), IMAGE_REQUIREMENTS)
    # mlflow's pyfunc loader without its server; numpy<2 as full mlflow 2.12 pinned it;
    # the image's own gunicorn to serve with.
    assert pins[:4] == ["mlflow-skinny==2.12.1", "cloudpickle==3.1.3", "pandas==2.3.3",
                        "scikit-learn==1.5.2"]  # fmt: skip
    # Then the server's own packages at the image's pins, nothing else.
    image_pins = {
        line.split("==")[0]: line
        for line in IMAGE_REQUIREMENTS.read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    server = ["gunicorn", "uvicorn", "uvicorn-worker", "httptools", "uvloop", "boto3",
              "prometheus-client", "pydantic-settings", "tenacity"]  # fmt: skip
    assert pins[4:] == ["numpy<2", *(image_pins[name] for name in server)]
    newer = model_env.venv_requirements(["mlflow==2.20.0", "numpy==2.1.0"], IMAGE_REQUIREMENTS)
    assert "numpy<2" not in newer and "numpy==2.1.0" in newer


def test_prepare_serves_here_and_reports(tmp_path: Path) -> None:
    same = "".join(f"{n}=={version(n)}\n" for n in ("scikit-learn", "pandas", "numpy"))
    env: dict[str, str] = {"INFERENCE_ENV_POLICY": "strict"}
    model_dir = write_model(tmp_path, same + "mlflow==3.17.2\n")
    assert model_env.prepare(model_dir, load_settings(env), env) is None
    facts = json.loads(env[model_env.REPORT_VARIABLE])
    assert facts["policy"] == "strict" and facts["model_venv"] is None
    assert {p["status"] for p in facts["packages"]} == {"same"}


def test_prepare_hands_over_to_a_prebuilt_venv(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    env = {"INFERENCE_ENV_POLICY": "model", "INFERENCE_MODEL_VENV": str(venv), "PATH": "/usr/bin"}
    command = model_env.prepare(write_model(tmp_path / "m"), load_settings(env), env)
    assert command == [str(venv / "bin" / "python"), "-m", "mlstack.serving.entrypoint", "serve"]
    assert env["PATH"].startswith(f"{venv}/bin:") and env[model_env.ACTIVE_VARIABLE] == str(venv)
    # Run again inside the venv: serve there, whatever it finds.
    assert model_env.prepare(write_model(tmp_path / "m"), load_settings(env), env) is None


def test_training_pins_are_the_inference_image_pins() -> None:
    """What the training image writes into every model is what the inference image runs."""
    from mlstack.training.model import pinned_requirements

    image = dict(line.split("==") for line in model_env._requirement_lines(
        IMAGE_REQUIREMENTS.read_text()))  # fmt: skip
    for pin in pinned_requirements():
        name, wanted = pin.split("==")
        name = "mlflow-skinny" if name == "mlflow" else name
        assert image.get(name) == wanted, f"{pin}: the inference image has {image.get(name)}"
