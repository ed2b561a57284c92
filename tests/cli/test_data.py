"""`mlstack data`: train/test channels and the hyperparameters that match them; every
mistake one line."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from mlstack.cli.main import cli

DIABETES_FEATURES = "age sex bmi bp s1 s2 s3 s4 s5 s6"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict | None, str]:
    """`mlstack data ARGV`: its exit status, the JSON it printed, what it said on stderr."""
    result = CliRunner().invoke(cli, ["data", *argv])
    out = result.stdout
    return result.exit_code, (json.loads(out) if out.strip() else None), result.stderr


def channels(output: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_csv(output / "train" / "train.csv"), pd.read_csv(output / "test" / "test.csv")


def test_diabetes_is_the_offline_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, hyperparameters, err = run(["--output", str(tmp_path)], capsys)
    assert code == 0
    assert hyperparameters == {"features": DIABETES_FEATURES, "target": "progression"}
    assert json.loads((tmp_path / "hyperparameters.json").read_text()) == hyperparameters
    train, test = channels(tmp_path)
    assert (len(train), len(test)) == (353, 89)
    assert list(train.columns) == [*DIABETES_FEATURES.split(), "progression"]
    assert train["age"].between(18, 90).all()  # unscaled: real ages
    assert "wrote 353 rows" in err


def test_split_is_repeatable_and_configurable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["--dataset", "diabetes", "--output", str(tmp_path / "a")], capsys)
    run(["--dataset", "diabetes", "--output", str(tmp_path / "b")], capsys)
    run(["--output", str(tmp_path / "c"), "--test-size", "0.5", "--random-state", "1"], capsys)
    assert channels(tmp_path / "a")[1].equals(channels(tmp_path / "b")[1])
    assert len(channels(tmp_path / "c")[1]) == 221


# The first rows of StatLib's cal_housing.data, the file scikit-learn downloads: longitude,
# latitude, housingMedianAge, totalRooms, totalBedrooms, population, households,
# medianIncome, medianHouseValue.
CAL_HOUSING_ROWS = [
    [-122.23, 37.88, 41.0, 880.0, 129.0, 322.0, 126.0, 8.3252, 452600.0],
    [-122.22, 37.86, 21.0, 7099.0, 1106.0, 2401.0, 1138.0, 8.3014, 358500.0],
    [-122.24, 37.85, 52.0, 1467.0, 190.0, 496.0, 177.0, 7.2574, 352100.0],
    [-122.25, 37.85, 52.0, 1274.0, 235.0, 558.0, 219.0, 5.6431, 341300.0],
    [-122.25, 37.85, 52.0, 1627.0, 280.0, 565.0, 259.0, 3.8462, 342200.0],
]
CALIFORNIA_FEATURES = "MedInc HouseAge AveRooms AveBedrms Population AveOccup Latitude Longitude"


@pytest.fixture
def california_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """scikit-learn's data home holding the California data as it caches it after the
    download (cal_housing_py3.pkz: the file's columns, reordered as scikit-learn keeps them),
    so its own loader runs offline: its 8 features, derived as it derives them."""
    import joblib
    import numpy as np

    home = tmp_path / "scikit_learn_data"
    home.mkdir()
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(home))
    raw = np.array(CAL_HOUSING_ROWS)
    joblib.dump(raw[:, [8, 7, 2, 3, 4, 5, 6, 1, 0]], home / "cal_housing_py3.pkz", compress=6)
    return home


def test_california_uses_its_own_names(
    california_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "channels"
    code, hyperparameters, _ = run(["--dataset", "california", "--output", str(out)], capsys)
    assert code == 0
    assert hyperparameters == {"features": CALIFORNIA_FEATURES, "target": "MedHouseVal"}
    train, test = channels(out)
    columns = [*CALIFORNIA_FEATURES.split(), "MedHouseVal"]
    assert list(train.columns) == list(test.columns) == columns
    rows = pd.concat([train, test]).sort_values("MedInc", ascending=False, ignore_index=True)
    assert len(rows) == len(CAL_HOUSING_ROWS)
    first = rows.iloc[0]  # StatLib's first row, as scikit-learn derives its features
    assert first["MedInc"] == 8.3252 and first["HouseAge"] == 41.0
    assert first["AveRooms"] == pytest.approx(880 / 126)
    assert first["AveOccup"] == pytest.approx(322 / 126)
    assert (first["Latitude"], first["Longitude"]) == (37.88, -122.23)
    assert first["MedHouseVal"] == pytest.approx(4.526)


def test_california_offline_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(**_: object) -> None:
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("sklearn.datasets.fetch_california_housing", offline)
    code, hyperparameters, err = run(["--dataset", "california", "--output", str(tmp_path)], capsys)
    assert (code, hyperparameters) == (1, None)
    assert "needs internet access; use --dataset diabetes offline" in err


@pytest.fixture
def houses(tmp_path: Path) -> Path:
    path = tmp_path / "houses.csv"
    pd.DataFrame(
        {
            "rooms": [3, 4, 2, 5, 3, 4, 6, 2, 3, 4],
            "city": list("abababcdcd"),
            "area": [70.0, 90.5, 50.0, 120.0, 75.0, 95.0, 150.0, 45.0, 72.0, None],
            "price": [200, 260, 150, 330, 210, 270, 400, 140, 205, 250],
        }
    ).to_csv(path, index=False)
    return path


def test_own_csv_takes_numeric_columns(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "channels"
    code, hyperparameters, err = run(
        ["--csv", str(houses), "--target", "price", "--output", str(out)], capsys
    )
    assert code == 0
    assert hyperparameters == {"features": "rooms area", "target": "price"}
    assert "leaving out non-numeric columns: city" in err
    train, test = channels(out)
    assert list(train.columns) == ["rooms", "area", "price"]
    assert len(train) + len(test) == 10


def test_own_csv_with_named_features(
    houses: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--csv", str(houses), "--target", "price", "--features", "area", "--output"]
    code, hyperparameters, _ = run([*argv, str(tmp_path / "c")], capsys)
    assert (code, hyperparameters) == (0, {"features": "area", "target": "price"})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "cost"], "has no column 'cost'; its columns are: rooms city area price"),
        (["--target", "city"], "target column 'city' must be numeric"),
        (["--target", "price", "--features", "rooms garden"], "has no column garden"),
        (["--target", "price", "--features", "city"], "features must be numeric: city"),
    ],
)
def test_own_csv_errors(
    houses: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    code, _, err = run(["--csv", str(houses), *extra, "--output", str(tmp_path / "o")], capsys)
    assert code == 1
    assert err.startswith("mlstack: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_missing_and_empty_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    for path, message in ((tmp_path / "nope.csv", "does not exist"), (empty, "is empty")):
        code, _, err = run(["--csv", str(path), "--target", "y", "--output", str(tmp_path)], capsys)
        assert code == 1
        assert message in err


def test_refuses_to_mix_with_other_csv_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "old.csv").write_text("a,b\n1,2\n")
    code, _, err = run(["--output", str(tmp_path)], capsys)
    assert code == 1
    assert "holds other CSV files (old.csv)" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--csv", "x.csv", "--output", "o"],
        ["--target", "y", "--output", "o"],
        ["--dataset", "diabetes", "--csv", "x.csv", "--target", "y", "--output", "o"],
        ["--output", "o", "--test-size", "1.5"],
        [],
    ],
)
def test_usage_errors(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, ["data", *argv])
    assert result.exit_code == 2
    assert result.stderr.startswith("mlstack: error: ")
    assert result.stderr.endswith("see `mlstack data --help`\n") and result.stderr.count("\n") == 1
