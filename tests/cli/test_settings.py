"""mlstack.cli.settings: the one reader of the environment, its one-line errors, its sources."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlstack.cli.main import cli
from mlstack.cli.settings import (
    ALL_SETTINGS,
    IMAGE_SETTINGS_MODULES,
    AwsSettings,
    LocalSettings,
    SettingsError,
    image_variables,
    load,
)
from mlstack.core.settings import variables
from support.images import ROOT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting inherited from the shell that runs the tests."""
    for name in set().union(*(variables(cls) for cls in ALL_SETTINGS)):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TUNING_MAX_JOBS", "many", "TUNING_MAX_JOBS must be a whole number, got 'many'"),
        ("TUNING_MAX_JOBS", "0", "TUNING_MAX_JOBS must be at least 1, got 0"),
        ("PUSH_ALLOW_DIRTY", "maybe", "PUSH_ALLOW_DIRTY must be true or false, got 'maybe'"),
        ("SAGEMAKER_INSTANCE_COUNT", " 2x ", "SAGEMAKER_INSTANCE_COUNT must be a whole number"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(variable, value, message, monkeypatch):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load(AwsSettings, None)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_environment_then_env_file_then_default_and_options_win(tmp_path: Path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("MODEL_NAME=from-file\nEXPERIMENT_NAME=from-file\nMLFLOW_PORT=5123\n")
    monkeypatch.setenv("EXPERIMENT_NAME", "from-environment")
    monkeypatch.setenv("MODEL_NAME", "")  # empty counts as unset
    settings = load(LocalSettings, env_file)
    assert settings.experiment_name == "from-environment"
    assert settings.model_name == "from-file"
    assert settings.tracking_uri == "http://127.0.0.1:5123"
    assert settings.db_name == "mlflow"  # the default
    assert load(LocalSettings, env_file, model_name="from-option", db_name=None).model_name == (
        "from-option"
    )


def test_a_missing_required_setting_names_the_variable():
    with pytest.raises(
        SettingsError, match=r"^SAGEMAKER_ROLE_ARN is not set \(see docs/configuration.md\)"
    ):
        load(AwsSettings, None).require("sagemaker_role_arn")


def test_aws_region_falls_back_to_aws_default_region(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert load(AwsSettings, None).aws_region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert load(AwsSettings, None).aws_region == "eu-central-1"


def test_a_cli_error_from_settings_is_one_line(tmp_path: Path):
    result = CliRunner().invoke(
        cli,
        ["--env-file", str(tmp_path / "none"), "aws", "tune"],
        env={"TUNING_MAX_PARALLEL_JOBS": "two"},
    )
    assert result.exit_code == 1
    assert result.stderr == (
        "mlstack: error: TUNING_MAX_PARALLEL_JOBS must be a whole number, got 'two'\n"
    )


def test_only_the_settings_module_reads_the_environment():
    """`os.environ` in the CLI only where settings are read, or a child's environment made."""
    cli_dir = ROOT / "src" / "mlstack" / "cli"
    allowed = {cli_dir / "settings.py"}
    child_env = re.compile(r"env = \{\*\*os\.environ")  # a subprocess's environment
    assert (cli_dir / "settings.py").is_file()
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in cli_dir.rglob("*.py")
        if path not in allowed
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if ("os.environ" in line or "os.getenv" in line) and not child_env.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("module_name", IMAGE_SETTINGS_MODULES)
def test_the_images_variables_read_from_source_are_those_their_classes_read(module_name):
    """The misspelling check knows the images' variables without importing their modules:
    what it reads from their source is exactly what their settings classes read."""
    import importlib

    from mlstack.core.settings import Settings

    module = importlib.import_module(module_name)
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Settings)
        and value.__module__ == module_name
    ]
    assert classes
    assert image_variables(module_name) == set().union(*(variables(cls) for cls in classes))
