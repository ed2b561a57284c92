"""`mlstack monitor`'s parts without S3 or a server: captured bodies to rows, drift that
flags exactly the shifted features, windows, schema, ground truth, the report."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstack.cli.monitor import analysis, drift, report
from mlstack.cli.monitor.baseline import ARTIFACT_DIR, BASELINE_FILE, REFERENCE_FILE, Baseline
from mlstack.cli.monitor.captures import KEY, PREDICTION, TIME, predictions, to_rows
from mlstack.cli.monitor.command import moment, seconds
from mlstack.core.errors import MlstackError
from mlstack.serving import capture_format as cf
from mlstack_mlflow_plugin import baseline as plugin_baseline

FEATURES = ["age", "bmi", "bp", "sex"]
START = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def reference(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(50, 10, rows),
            "bmi": rng.normal(26, 4, rows),
            "bp": rng.normal(90, 12, rows),
            "sex": rng.choice(["f", "m"], rows),
        }
    )
    frame["progression"] = frame["bmi"] * 5 + rng.normal(0, 10, rows)
    frame["prediction"] = frame["bmi"] * 5
    return frame


def make_baseline(frame: pd.DataFrame) -> Baseline:
    stats = plugin_baseline.statistics(frame, FEATURES)
    return Baseline(
        model_uri="models:/m@champion",
        name="m",
        version="1",
        run_id="r",
        experiment_id="0",
        model_id=None,
        features=stats,
        target="progression",
        prediction="prediction",
        reference=frame,
    )


def events(
    frame: pd.DataFrame, start: datetime, every_s: float = 1.0, columns: list[str] = FEATURES
) -> list[cf.Event]:
    """One request per two rows, alternating CSV (a header only when the columns are not the
    model's) and JSON split."""
    out = []
    header = columns != FEATURES
    for index in range(0, len(frame), 2):
        part = frame.iloc[index : index + 2]
        if (index // 2) % 2:
            body, content_type = part[columns].to_json(orient="split"), "application/json"
        else:
            body, content_type = part[columns].to_csv(header=header, index=False), "text/csv"
        answer = json.dumps({"predictions": (part["bmi"] * 5).tolist()})
        record = cf.record(
            start + timedelta(seconds=index * every_s),
            (content_type, body.encode()),
            ("application/json", answer.encode()),
            inference_id=f"id-{index}",
        )
        out.append(cf.parse_record(json.loads(cf.record_line(record))))
    return out


def test_the_file_names_are_the_plugins() -> None:
    assert (ARTIFACT_DIR, BASELINE_FILE, REFERENCE_FILE) == (
        plugin_baseline.ARTIFACT_DIR,
        plugin_baseline.BASELINE_FILE,
        plugin_baseline.REFERENCE_FILE,
    )


def test_captured_bodies_become_rows() -> None:
    frame = reference(6)
    traffic = to_rows(events(frame, START), FEATURES)
    rows = traffic.rows
    assert len(rows) == 6 and set(FEATURES) <= set(rows.columns)
    assert rows["bmi"].round(6).tolist() == frame["bmi"].round(6).tolist()
    assert rows[PREDICTION].round(6).tolist() == (frame["bmi"] * 5).round(6).tolist()
    assert rows[KEY].tolist() == ["id-0", "id-0", "id-2", "id-2", "id-4", "id-4"]
    assert rows["sex"].tolist() == frame["sex"].tolist()


def test_unreadable_and_positional_bodies_are_reported() -> None:
    odd = [
        cf.record(START, ("application/x-npy", b"\x93NUMPY"), None),
        cf.record(START, ("text/csv", b"1,2\n"), None),
        cf.record(START, ("application/json", b"{not json"), None),
    ]
    traffic = to_rows([cf.parse_record(json.loads(cf.record_line(r))) for r in odd], FEATURES)
    assert sum(traffic.unreadable.values()) == 2
    assert traffic.positional_width == {2}
    assert list(traffic.rows.columns[:2]) == ["column_0", "column_1"]


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"predictions": [1.5, 2]}', "application/json", [1.5, 2]),
        (b'{"predictions": [[1, 2], [3, 4]]}', "application/json", [1, 3]),
        (b'[{"score": 0.5}]', "application/json", [0.5]),
        (b"7.5\n8\n", "text/csv; charset=utf-8", [7.5, 8.0]),
    ],
)
def test_predictions_of_captured_answers(body, content_type, expected) -> None:
    payload = cf.Payload(content_type, "JSON", body)
    assert predictions(payload) == expected


def shifted(frame: pd.DataFrame, **stds: float) -> pd.DataFrame:
    out = frame.copy()
    for name, amount in stds.items():
        out[name] = out[name] + amount * frame[name].std()
    return out


@pytest.mark.parametrize(("stattest", "rows"), [(drift.AUTO, 300), (drift.DISTANCE, 3000)])
def test_flags_exactly_the_shifted_features(stattest: str, rows: int) -> None:
    base = make_baseline(reference(rows + 100, seed=0))
    unshifted = reference(rows, seed=1)
    options = analysis.Options(drift.Rule(stattest), 3600)
    calm = analysis.analyse(base, to_rows(events(unshifted, START), FEATURES), options)
    assert calm["drifted_features"] == [] and not calm["drift_detected"]
    moved = analysis.analyse(
        base, to_rows(events(shifted(unshifted, bmi=1.5, bp=2), START), FEATURES), options
    )
    assert moved["drifted_features"] == ["bmi", "bp"]
    assert moved["prediction_drifted"]  # the predictions follow bmi
    row = next(f for f in moved["features"] if f["name"] == "bmi")
    assert (
        row["distance"] > row["threshold"] if stattest == drift.DISTANCE else row["p_value"] < 0.05
    )
    assert row["test_name"] == "ks" and row["statistic"] > 0


def test_categorical_drift() -> None:
    base = make_baseline(reference(400))
    current = reference(300, seed=2)
    current["sex"] = "m"
    found = analysis.analyse(base, to_rows(events(current, START), FEATURES), analysis.Options())
    assert found["drifted_features"] == ["sex"]
    sex = next(f for f in found["features"] if f["name"] == "sex")
    assert (sex["kind"], sex["distance_name"], sex["test_name"]) == (
        "categorical",
        "jensenshannon",
        "chisquare",
    )


def test_windows_schema_and_ground_truth(tmp_path: Path) -> None:
    base = make_baseline(reference(400))
    current = reference(120, seed=3).assign(extra=1.0)
    sent = ["age", "bmi", "sex", "extra"]  # no bp
    traffic = to_rows(events(current, START, every_s=1, columns=sent), [*FEATURES, "extra"])
    truth_csv = tmp_path / "truth.csv"
    labels = [
        (f"id-{i}", v) for i, v in zip(range(0, 120, 2), current["progression"][::2], strict=True)
    ]
    pd.DataFrame(labels, columns=["inference_id", "progression"]).to_csv(truth_csv, index=False)
    truth, _ = analysis.read_ground_truth(truth_csv, "progression")
    found = analysis.analyse(base, traffic, analysis.Options(window_seconds=30), truth)
    assert found["schema"]["missing"] == ["bp"]
    assert found["schema"]["unexpected"] == ["extra"]
    assert [w["requests"] for w in found["windows"]] == [15, 15, 15, 15]
    assert found["quality"]["rows"] == 60
    expected = (current["progression"][::2] - current["bmi"][::2] * 5).abs().mean()
    assert found["quality"]["mae"] == pytest.approx(expected)
    assert all("mae" in w for w in found["windows"])


def test_report_files(tmp_path: Path) -> None:
    base = make_baseline(reference(400))
    traffic = to_rows(events(shifted(reference(200, seed=4), bmi=2), START), FEATURES)
    summary = analysis.analyse(base, traffic, analysis.Options(window_seconds=60))
    summary["model"] = {"uri": "models:/m@champion", "name": "m", "version": "1", "run_id": "r"}
    summary["captures"] = {
        "uri": "s3://b/p/e/AllTraffic/",
        "endpoint": "e",
        "variant": "AllTraffic",
    }
    summary["captures"].update(since="2026-05-01T00:00:00Z", until="2026-05-02T00:00:00Z")
    summary["mlflow"] = {"run_id": "abc"}
    html, written = report.write(summary, base.reference, traffic.rows, "prediction", tmp_path)
    page = html.read_text()
    assert "Drift in 1 of 4" in page and "bmi" in page
    assert page.count("data:image/png;base64,") == 2
    document = json.loads(written.read_text())
    assert document["drifted_features"] == ["bmi"]
    assert all(isinstance(f["distance"], float) for f in document["features"])


def test_durations_and_times() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert seconds("90s", "--window") == 90 and seconds("2h", "--window") == 7200
    assert moment("24h", "--since", now) == now - timedelta(hours=24)
    assert moment("2026-05-01T10:00:00", "--since", now) == datetime(2026, 5, 1, 10, tzinfo=UTC)
    for bad in ("0s", "soon", "5w"):
        with pytest.raises(MlstackError, match="--window"):
            seconds(bad, "--window")
    assert TIME  # the monitor's own columns are module constants
