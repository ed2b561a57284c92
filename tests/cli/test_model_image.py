"""`mlstack build-model-image` without Docker: the build context and its one-line errors.
(The image itself is built and served in tests/serving/test_model_env_container.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mlstack.cli import model_image
from mlstack.cli.main import cli

REQUIREMENTS = "mlflow==2.12.1\ncloudpickle==3.1.3\npandas==2.3.3\nscikit-learn==1.5.2\n"


def model_dir(path: Path, requirements: str | None = REQUIREMENTS) -> Path:
    path.mkdir(parents=True)
    (path / "MLmodel").write_text("flavors:\n  sklearn:\n    sklearn_version: 1.5.2\n")
    (path / "model.pkl").write_bytes(b"x")
    (path / "model.pkl").chmod(0o600)
    if requirements is not None:
        (path / "requirements.txt").write_text(requirements)
    return path


def test_context_holds_the_model_its_venv_pins_and_the_dockerfile(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    pins = model_image.write_context(model_dir(tmp_path / "m"), context, "x:1", "/m")
    assert pins[:4] == [
        "mlflow-skinny==2.12.1",
        "cloudpickle==3.1.3",
        "pandas==2.3.3",
        "scikit-learn==1.5.2",
    ]
    assert (context / "requirements-model.txt").read_text().split() == pins
    # The image's non-root user must read the model, whatever the source's modes.
    assert (context / "model" / "model.pkl").stat().st_mode & 0o777 == 0o644
    dockerfile = (context / "Dockerfile").read_text()
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert "INFERENCE_ENV_POLICY=model" in dockerfile
    assert "INFERENCE_MODEL_VENV=/opt/model-env" in dockerfile
    assert "mlflow.pyfunc.load_model('/opt/ml/model')" in dockerfile


def test_a_model_without_requirements_is_refused(tmp_path: Path) -> None:
    with pytest.raises(model_image.ModelImageError, match="records no requirements"):
        model_image.write_context(model_dir(tmp_path / "m", None), tmp_path, "x:1", "/m")


@pytest.mark.parametrize(
    ("uri", "env", "message"),
    [
        ("no/such/dir", {}, "neither a directory nor a models:/ or runs:/ URI"),
        ("models:/m@champion", {"MLFLOW_TRACKING_URI": ""}, "needs MLFLOW_TRACKING_URI"),
    ],
)
def test_bad_model_uri_in_one_line(uri, env, message, tmp_path) -> None:
    argv = ["--env-file", str(tmp_path / "none"), "build-model-image", "--model-uri", uri]
    result = CliRunner().invoke(cli, [*argv, "--image", "x:1"], env=env)
    assert result.exit_code == 1
    err = result.stderr
    assert message in err and err.count("\n") == 1
    assert err.startswith("mlstack: error: ")


def test_a_folder_without_mlmodel_is_refused(tmp_path: Path) -> None:
    with pytest.raises(model_image.ModelImageError, match="holds no MLmodel file"):
        model_image.fetch_model(str(tmp_path), tmp_path / "d")
