"""Drift between the training data (the reference) and captured traffic, per feature and for
the predictions, with scipy's statistics.

Each column gets a distance and a test, and one of them decides, against a threshold:
- numeric: the Wasserstein distance (scipy.stats.wasserstein_distance) divided by the
  training data's standard deviation, and the two-sample Kolmogorov-Smirnov test
  (scipy.stats.ks_2samp: its statistic D and p-value);
- categorical: the Jensen-Shannon distance of the category shares
  (scipy.spatial.distance.jensenshannon, base 2) and Pearson's chi-square test of the
  captured counts against the training shares (scipy.stats.chisquare).
The rule, `--stattest`:
- `distance`: drifted when the distance reaches `--distance-threshold` (default 0.1);
- `test`: drifted when the test's p-value is below `--p-value` (default 0.05) divided by the
  number of features compared (Bonferroni), so that a report of many unchanged features
  flags one by chance about once in twenty reports, not once in twenty features;
- `auto` (the default): `distance` when both samples have more than 1,000 values, else
  `test`, as Evidently chooses between the same statistics: with fewer values a distance
  of 0.1 is within sampling noise, with many a test finds differences too small to matter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

AUTO, DISTANCE, TEST = "auto", "distance", "test"
DISTANCE_THRESHOLD = 0.1
P_VALUE = 0.05
LARGE = 1000  # auto: more values than this in both samples, the distance decides
MIN_ROWS = 5  # fewer captured values than this: no verdict for the column


@dataclass(frozen=True)
class Rule:
    """How a column is judged: --stattest, --distance-threshold, --p-value."""

    stattest: str = AUTO
    distance_threshold: float = DISTANCE_THRESHOLD
    p_value: float = P_VALUE

    def decide(self, reference_rows: int, current_rows: int) -> str:
        """distance or test, for samples of these sizes."""
        if self.stattest != AUTO:
            return self.stattest
        return DISTANCE if min(reference_rows, current_rows) > LARGE else TEST


@dataclass(frozen=True)
class ColumnDrift:
    """One column's comparison: distance, test, threshold, verdict."""

    name: str
    kind: str  # numeric or categorical
    distance_name: str
    distance: float | None
    test_name: str
    statistic: float | None
    p_value: float | None
    stattest: str  # the rule that decided: distance or test
    threshold: float  # the distance to reach, or the (corrected) p-value to go below
    drifted: bool
    reference_rows: int
    current_rows: int
    current_missing: int

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def compare(
    name: str,
    reference: Any,
    current: Any,
    kind: str,
    rule: Rule,
    compared: int = 1,
    std: float | None = None,
) -> ColumnDrift:
    """Distance, test and verdict for one column (pandas Series), one of `compared`."""
    missing = int(current.isna().sum())
    ref, cur = reference.dropna(), current.dropna()
    stattest = rule.decide(len(ref), len(cur))
    threshold = rule.distance_threshold if stattest == DISTANCE else rule.p_value / compared
    base = {
        "name": name,
        "kind": kind,
        "stattest": stattest,
        "threshold": threshold,
        "reference_rows": len(ref),
        "current_rows": len(cur),
        "current_missing": missing,
    }
    if kind == "numeric":
        names = {"distance_name": "wasserstein_normed", "test_name": "ks"}
    else:
        names = {"distance_name": "jensenshannon", "test_name": "chisquare"}
    if len(cur) < MIN_ROWS or len(ref) < MIN_ROWS:
        return ColumnDrift(
            **base, **names, distance=None, statistic=None, p_value=None, drifted=False
        )
    if kind == "numeric":
        distance, statistic, p_value = _numeric(ref.astype(float), cur.astype(float), std)
    else:
        distance, statistic, p_value = _categorical(ref.astype(str), cur.astype(str))
    drifted = distance >= threshold if stattest == DISTANCE else p_value < threshold
    return ColumnDrift(
        **base,
        **names,
        distance=distance,
        statistic=statistic,
        p_value=p_value,
        drifted=bool(drifted),
    )


def _numeric(ref: Any, cur: Any, std: float | None) -> tuple[float, float, float]:
    from scipy import stats

    scale = std if std else float(ref.std(ddof=0))
    raw = float(stats.wasserstein_distance(ref, cur))
    distance = raw / scale if scale > 0 else (0.0 if raw == 0 else math.inf)
    test = stats.ks_2samp(ref, cur)
    return distance, float(test.statistic), float(test.pvalue)


def _categorical(ref: Any, cur: Any) -> tuple[float, float, float]:
    import numpy as np
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    categories = sorted(set(ref) | set(cur))
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy(float)
    cur_counts = cur.value_counts().reindex(categories, fill_value=0).to_numpy(float)
    distance = float(jensenshannon(ref_counts, cur_counts, base=2))
    # Expected counts from the training shares; a category unseen in training gets a share
    # of half a row, so the test stays defined and such a category weighs heavily.
    shares = (ref_counts + np.where(ref_counts == 0, 0.5, 0)) / (ref_counts.sum() + 0.5)
    expected = shares / shares.sum() * cur_counts.sum()
    test = stats.chisquare(cur_counts, expected)
    return distance, float(test.statistic), float(test.pvalue)


@dataclass
class Comparison:
    """Features and predictions of one stretch of traffic against the reference."""

    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    rows: int

    @property
    def drifted(self) -> list[str]:
        return [column.name for column in self.features if column.drifted]

    @property
    def share(self) -> float:
        judged = [c for c in self.features if c.distance is not None]
        return len(self.drifted) / len(judged) if judged else 0.0


def compare_all(
    baseline: Any, current: Any, features: Sequence[str], prediction: str, rule: Rule
) -> Comparison:
    """Every feature present in both, and the predictions, of `current` (DataFrame); the
    predictions are judged on their own (not one of the features' family)."""
    import pandas as pd

    reference = baseline.reference
    present = [name for name in features if name in current.columns]
    columns = []
    for name in present:
        kind = baseline.kind(name)
        std = baseline.std(name) if kind == "numeric" else None
        columns.append(compare(name, reference[name], current[name], kind, rule, len(present), std))
    predicted = None
    reference_predictions = baseline.prediction or baseline.target
    if reference_predictions and prediction in current.columns:
        values = pd.to_numeric(current[prediction], errors="coerce")
        kind = "numeric" if values.notna().any() else "categorical"
        predicted = compare(
            "prediction",
            reference[reference_predictions],
            values if kind == "numeric" else current[prediction],
            kind,
            rule,
        )
    return Comparison(columns, predicted, len(current))


def schema_differences(baseline_features: Sequence[str], current: Any) -> dict[str, list[str]]:
    """Features the model expects that traffic lacks (or never fills), and columns it sends
    that the model was not trained on."""
    from mlstack.cli.monitor.captures import KEY, PREDICTION, ROW, TIME

    own = {TIME, KEY, ROW, PREDICTION, "__window__"}
    present = [c for c in current.columns if c not in own]
    missing = [f for f in baseline_features if f not in present or current[f].isna().all()]
    unexpected = [c for c in present if c not in set(baseline_features)]
    return {"missing": missing, "unexpected": unexpected}
