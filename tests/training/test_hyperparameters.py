"""The built-in script's hyperparameters, as its command line brings them: SageMaker's
hyperparameters.json (plain or JSON-encoded strings) through the training toolkit."""

from __future__ import annotations

import json

import pytest

from mlstack.training.errors import TrainingError
from mlstack.training.hyperparameters import parse, parse_features
from mlstack_mlflow_plugin import job, settings

from .helpers import toolkit_argv

REFERENCE = {
    "tracking_uri": "http://tracking-server:5000",
    "experiment_name": "diabetes",
    "n-estimators": "100",
    "min-samples-leaf": "3",
    "features": "age sex bmi",
    "target": "progression",
}


def hyperparameters(values: dict[str, object]):
    """parse() of the command line the toolkit gives the script for these values."""
    return parse(toolkit_argv(values))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("abc", "abc"),
        ('"abc"', "abc"),
        ('"age sex bmi"', "age sex bmi"),
        ("100", "100"),
        ('"100"', "100"),
        ('"http://h:5000"', "http://h:5000"),
        ('"unterminated', '"unterminated'),
        ('"a" "b"', '"a" "b"'),  # quoted at both ends but not one JSON string
        ("-x", "-x"),  # a value, not an option
        (100, "100"),
        (2.5, "2.5"),
    ],
)
def test_values_plain_or_json_encoded(raw: object, expected: str) -> None:
    assert hyperparameters({"target": raw}).target == expected


def test_reference_hyperparameters_plain_and_json_encoded_agree() -> None:
    plain = hyperparameters(REFERENCE)
    encoded = hyperparameters({key: json.dumps(value) for key, value in REFERENCE.items()})
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
    hp = hyperparameters(
        {"TARGET": "y", "tracking-uri": "http://x", "n_estimators": "7", "random_state": "0"}
    )
    assert (hp.target, hp.tracking_uri, hp.n_estimators, hp.random_state) == ("y", "http://x", 7, 0)
    assert hp.min_samples_leaf == 3
    assert hp.features == ()  # every column but the target


def test_name_equals_value_and_a_value_starting_with_a_dash() -> None:
    hp = parse(["--Target=y", "--features", "-a -b", "--n-estimators=8"])
    assert (hp.target, hp.features, hp.n_estimators) == ("y", ("-a", "-b"), 8)


def test_integral_floats_are_whole_numbers() -> None:
    assert hyperparameters({"target": "y", "n-estimators": "20.0"}).n_estimators == 20


def test_platform_keys_are_ignored_quietly_and_unknown_keys_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    values = {
        "target": "y",
        "sagemaker_program": '"train.py"',
        "sagemaker_region": '"eu-west-1"',
        "_tuning_objective_metric": "median-AE",
        "max-depth": "3",
    }
    hp = hyperparameters(values)
    assert hp.ignored == ("max-depth",)
    assert "max-depth" in caplog.text
    assert "tuning_objective" not in caplog.text
    # Given on the command line anyway (the toolkit keeps sagemaker_* for itself): quiet too.
    assert parse(["--target", "y", "--sagemaker_program", "train.py"]).ignored == ()
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
        hyperparameters(values)


def test_features_split_on_spaces_and_commas() -> None:
    assert parse_features(" a  b,c\td ") == ("a", "b", "c", "d")
    assert parse_features("") == ()


def test_parent_run_id_nests_the_run() -> None:
    values = {"target": "progression", "parent-run-id": '"abc123"'}
    assert hyperparameters(values).parent_run_id == "abc123"
    # The image's MLflow plugin nests the run, from the same hyperparameter.
    environment = settings.read({"SM_TRAINING_ENV": "{}", "SM_HPS": json.dumps(values)})
    assert job.run_tags(environment)["mlflow.parentRunId"] == "abc123"
