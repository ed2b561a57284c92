"""Hyperparameters as SageMaker passes them: plain strings or JSON-encoded strings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlstack.training.errors import TrainingError
from mlstack.training.hyperparameters import decode_value, load, parse, parse_features

REFERENCE = {
    "tracking_uri": "http://tracking-server:5000",
    "experiment_name": "diabetes",
    "n-estimators": "100",
    "min-samples-leaf": "3",
    "features": "age sex bmi",
    "target": "progression",
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("abc", "abc"),
        ('"abc"', "abc"),
        ('"age sex bmi"', "age sex bmi"),
        ("100", "100"),
        ('"100"', "100"),
        ("true", "true"),  # not reinterpreted: only JSON strings are decoded
        ('"http://h:5000"', "http://h:5000"),
        ('"unterminated', '"unterminated'),
        ('"a" "b"', '"a" "b"'),  # quoted at both ends but not one JSON string
        (100, "100"),
        (2.5, "2.5"),
        (True, "true"),
    ],
)
def test_decode_value(raw: object, expected: str) -> None:
    assert decode_value(raw) == expected


def test_decode_value_refuses_lists() -> None:
    with pytest.raises(TrainingError, match="must be strings"):
        decode_value(["a"])


def test_reference_hyperparameters_plain_and_json_encoded_agree() -> None:
    plain = parse(REFERENCE)
    encoded = parse({key: json.dumps(value) for key, value in REFERENCE.items()})
    assert plain == encoded
    assert plain.tracking_uri == "http://tracking-server:5000"
    assert plain.experiment_name == "diabetes"
    assert plain.n_estimators == 100
    assert plain.min_samples_leaf == 3
    assert plain.features == ("age", "sex", "bmi")
    assert plain.target == "progression"
    assert plain.random_state is None
    assert plain.registered_model_name is None


def test_defaults_and_name_spellings() -> None:
    hp = parse(
        {"TARGET": "y", "tracking-uri": "http://x", "n_estimators": "7", "random_state": "0"}
    )
    assert (hp.target, hp.tracking_uri, hp.n_estimators, hp.random_state) == ("y", "http://x", 7, 0)
    assert hp.min_samples_leaf == 3
    assert hp.features == ()  # every column but the target


def test_integral_floats_are_whole_numbers() -> None:
    assert parse({"target": "y", "n-estimators": "20.0"}).n_estimators == 20


def test_platform_keys_are_ignored_quietly_and_unknown_keys_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hp = parse(
        {
            "target": "y",
            "sagemaker_program": '"train.py"',
            "sagemaker_region": '"eu-west-1"',
            "_tuning_objective_metric": "median-AE",
            "max-depth": "3",
        }
    )
    assert hp.ignored == ("max-depth",)
    assert "max-depth" in caplog.text
    assert "sagemaker_program" not in caplog.text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "hyperparameter target is not set"),
        ({"target": '""'}, "hyperparameter target is not set"),
        ({"target": "y", "n-estimators": "abc"}, "n-estimators must be a whole number.*'abc'"),
        ({"target": "y", "n-estimators": '"ten"'}, "n-estimators must be a whole number.*'ten'"),
        ({"target": "y", "n-estimators": "2.5"}, "n-estimators must be a whole number"),
        ({"target": "y", "n-estimators": "0"}, "n-estimators must be at least 1"),
        ({"target": "y", "min-samples-leaf": "nan"}, "min-samples-leaf must be a whole number"),
        ({"target": "y", "random-state": "-1"}, "random-state must be at least 0"),
        ({"target": "y", "features": "a y"}, "features must not include the target 'y'"),
        ({"target": "y", "features": "a b a"}, "lists a more than once"),
        ({"target": "y", "n-estimators": "5", "n_estimators": "6"}, "n-estimators is given twice"),
    ],
)
def test_bad_values_say_which_and_why(values: dict[str, str], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        parse(values)


def test_features_split_on_spaces_and_commas() -> None:
    assert parse_features(" a  b,c\td ") == ("a", "b", "c", "d")
    assert parse_features("") == ()


def test_load_reads_the_file_and_reports_broken_json(tmp_path: Path) -> None:
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"target": '"y"'}))
    assert load(path).target == "y"
    path.write_text("{not json")
    with pytest.raises(TrainingError, match="is not valid JSON"):
        load(path)
    path.write_text("[1, 2]")
    with pytest.raises(TrainingError, match="must hold a JSON object"):
        load(path)
    with pytest.raises(TrainingError, match="target is not set"):
        load(tmp_path / "missing.json")


def test_parent_run_id_nests_the_run() -> None:
    from mlstack.training.config import load_settings
    from mlstack.training.job import run_tags

    hp = parse({"target": "progression", "parent-run-id": '"abc123"'})
    assert hp.parent_run_id == "abc123"
    assert run_tags(load_settings(hp, {}), hp)["mlflow.parentRunId"] == "abc123"
