"""`mlstack local traffic` (the first step of `make local-monitor`): requests to the local
endpoint made from the test channel, the later part with some features shifted, so that the
endpoint's captures show drift in exactly those features.

Requests alternate between CSV without a header and a pandas split frame in JSON (one to a
few rows each) and carry SageMaker's inference-id header; the rows' true targets go to a
ground-truth CSV keyed by those ids, for `mlstack monitor --ground-truth`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import requests

from mlstack.cli.errors import CliError
from mlstack.serving.capture_format import INFERENCE_ID_HEADER

SHIFT_FEATURES = 2  # features shifted when none are named: the first ones with many values
SHIFT_STDS = 2.0


class TrafficError(CliError):
    """Traffic that cannot be sent; the message says what to do."""


@dataclass(frozen=True)
class Sent:
    requests: int
    rows: int
    shifted: dict[str, float]
    ground_truth: Path
    ids: set[str]


def parse_shifts(values: tuple[str, ...], frame, features: list[str]) -> dict[str, float]:
    """FEATURE=STDS pairs; none: the first SHIFT_FEATURES features with more than two values,
    by SHIFT_STDS standard deviations."""
    shifts: dict[str, float] = {}
    for value in values:
        name, _, amount = value.partition("=")
        if name not in features:
            raise TrafficError(f"--shift {value}: {name!r} is not a feature ({' '.join(features)})")
        try:
            shifts[name] = float(amount or SHIFT_STDS)
        except ValueError:
            raise TrafficError(f"--shift {value}: give FEATURE=STDS, e.g. bmi=2") from None
    if not values:
        varied = [f for f in features if frame[f].nunique() > 2][:SHIFT_FEATURES]
        shifts = dict.fromkeys(varied, SHIFT_STDS)
    return shifts


def send(
    endpoint: str,
    test_csv: Path,
    target: str,
    features: list[str],
    rows: int | None,
    shifted_share: float,
    shifts: tuple[str, ...],
    ground_truth: Path,
    seed: int = 42,
) -> Sent:
    """Send `rows` test rows (all of them when None), each once, in a shuffled order and
    small requests; the last `shifted_share` of them shifted. Fails on the first answer
    that is not 200."""
    import pandas as pd

    if not test_csv.is_file():
        raise TrafficError(f"{test_csv} does not exist: run `make data` first")
    frame = pd.read_csv(test_csv)
    if rows is not None and not 0 < rows <= len(frame):
        # A row sent twice would count twice as evidence in the monitor's tests.
        raise TrafficError(f"--rows {rows}: give 1 to {len(frame)}, the rows of {test_csv}")
    shift = parse_shifts(shifts, frame, features)
    rng = random.Random(seed)  # noqa: S311 - reproducible traffic, not a secret
    sample = frame.sample(frac=1, random_state=seed).reset_index(drop=True)
    rows = rows or len(sample)
    sample = sample.iloc[:rows]
    first_shifted = int(rows * (1 - shifted_share))
    for name, stds in shift.items():
        sample.loc[first_shifted:, name] = (
            sample.loc[first_shifted:, name] + stds * frame[name].std()
        )
    truth, start, count = [], 0, 0
    session = requests.Session()
    while start < rows:
        size = min(rng.randint(1, 4), rows - start)
        part = sample.iloc[start : start + size]
        inference_id = f"traffic-{count:05d}"
        if count % 2:
            body = part[features].to_json(orient="split")
            content_type = "application/json"
        else:
            body = part[features].to_csv(header=False, index=False)
            content_type = "text/csv"
        answer = session.post(
            f"{endpoint}/invocations",
            data=body,
            headers={"Content-Type": content_type, INFERENCE_ID_HEADER: inference_id},
            timeout=30,
        )
        if answer.status_code != 200:
            raise TrafficError(f"{endpoint} answered {answer.status_code}: {answer.text[:300]}")
        truth += [(inference_id, value) for value in part[target]]
        start, count = start + size, count + 1
    ground_truth.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(truth, columns=["inference_id", target]).to_csv(ground_truth, index=False)
    return Sent(count, rows, shift, ground_truth, {inference_id for inference_id, _ in truth})


def wait_captured(s3, location, since, ids: set[str], timeout: float = 60) -> int:
    """Wait until the endpoint has written every request sent (its captures hold each
    inference id); how many it holds. The writer uploads a file every few seconds."""
    from datetime import UTC, datetime

    from mlstack.cli.monitor.captures import read_events
    from mlstack.core.waiting import TimedOut, poll

    def captured() -> int | None:
        events, _ = read_events(s3, location, since, datetime.now(UTC))
        found = {event.inference_id for event in events} & ids
        return len(found) if len(found) == len(ids) else None

    try:
        return poll(captured, timeout, 1.0)
    except TimedOut:
        raise TrafficError(
            f"the endpoint's captures in {location.uri} lack some of the {len(ids)} requests "
            f"after {timeout:.0f} s: see `docker logs` of the endpoint"
        ) from None
