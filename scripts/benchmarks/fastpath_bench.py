#!/usr/bin/env python3
"""The exact fast paths against the model's own predict, in one process, per model type.

Each model is fitted on scikit-learn's diabetes data (10 features; classifiers on the
target's thresholds), saved as an MLflow model with a signature and an input example,
and loaded the way a server worker loads it (mlstack.serving.predictor.load_predictor:
the start-up proof runs, its time is reported). Then, in rounds that alternate the
contenders, each times:
- fast: the fast path on a float64 matrix (what the server calls after parsing);
- model: the estimator's own method (predict or predict_proba) on a one-row DataFrame;
- pyfunc: the MLflow pyfunc model's predict on the same DataFrame (the generic path);
for one row, and for a batch of BATCH rows. Medians over the rounds, per row. Before
timing, every fast answer is checked bit for bit against the model's.

Needs only the host venv (no Docker):

    .venv/bin/python scripts/benchmarks/fastpath_bench.py --rounds 5
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BATCH = 1000


@dataclass
class Case:
    """A model type to measure: how to fit it and which method its pyfunc calls."""

    name: str
    make: Callable[[], Any]
    target: str  # "value", "binary" or "classes"
    method: str = "predict"


def cases() -> list[Case]:
    """The issue's model types, and one of each other family."""
    from sklearn.ensemble import (
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def forest_classifier() -> Any:
        return RandomForestClassifier(n_estimators=100, random_state=0)

    return [
        Case(
            "RandomForestRegressor (100 trees)",
            lambda: RandomForestRegressor(random_state=0),
            "value",
        ),
        Case("RandomForestClassifier, predict", forest_classifier, "binary"),
        Case("RandomForestClassifier, predict_proba", forest_classifier, "binary", "predict_proba"),
        Case(
            "GradientBoostingRegressor (examples/gradient_boosting)",
            lambda: GradientBoostingRegressor(
                n_estimators=100, min_samples_leaf=3, learning_rate=0.1, max_depth=3, random_state=0
            ),
            "value",
        ),
        Case(
            "HistGradientBoostingRegressor",
            lambda: HistGradientBoostingRegressor(random_state=0),
            "value",
        ),
        Case(
            "HistGradientBoostingClassifier, predict_proba",
            lambda: HistGradientBoostingClassifier(random_state=0),
            "classes",
            "predict_proba",
        ),
        Case(
            "Pipeline(StandardScaler, Ridge)",
            lambda: make_pipeline(StandardScaler(), Ridge()),
            "value",
        ),
        Case("LinearRegression", LinearRegression, "value"),
        Case(
            "LogisticRegression, predict_proba",
            lambda: LogisticRegression(max_iter=1000),
            "binary",
            "predict_proba",
        ),
    ]


def per_call(function: Callable[[], Any], seconds: float) -> float:
    """Seconds per call of function, called for about `seconds`."""
    function()
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        function()
        calls += 1
    return elapsed / max(calls, 1)


def measure(case: Case, rounds: int, seconds: float, root: Path) -> dict[str, Any]:
    """Fit, save and load one model; time its contenders in alternating rounds."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_diabetes

    from mlstack.serving.predictor import load_predictor

    features, values = load_diabetes(return_X_y=True, as_frame=True)
    target = {
        "value": values,
        "binary": values > 140,
        "classes": np.digitize(values, [100, 150, 200]),
    }[case.target]
    estimator = case.make().fit(features, target)
    method = getattr(estimator, case.method)
    path = root / f"model-{len(list(root.iterdir()))}"
    mlflow.sklearn.save_model(
        estimator,
        str(path),
        signature=infer_signature(features, method(features)),
        input_example=features.iloc[:3],
        serialization_format="cloudpickle",
        pyfunc_predict_fn=case.method,
    )
    started = time.perf_counter()
    predictor = load_predictor(path)
    load_seconds = time.perf_counter() - started
    fast = predictor.fast
    if fast is None:
        return {"name": case.name, "note": predictor.fast_path_note}
    rng = np.random.default_rng(0)
    batch = features.iloc[rng.integers(0, len(features), BATCH)].reset_index(drop=True)
    row = batch.iloc[[0]]
    order = fast.feature_order
    row_matrix, batch_matrix = row[order].to_numpy(), batch[order].to_numpy()
    for frame, matrix in ((row, row_matrix), (batch, batch_matrix)):
        # The served model is the pyfunc one: scikit-learn's linear models answer it
        # as they answer MLflow's DataFrame (see fastpath/linear.py).
        expected, actual = predictor.model.predict(frame), fast.predict(matrix)
        if actual.tobytes() != expected.tobytes() or actual.dtype != expected.dtype:
            raise SystemExit(f"{case.name}: the fast path differs from the model")
    contenders = {
        "fast": (lambda: fast.predict(row_matrix), lambda: fast.predict(batch_matrix)),
        "model": (lambda: method(row), lambda: method(batch)),
        "pyfunc": (lambda: predictor.model.predict(row), lambda: predictor.model.predict(batch)),
    }
    timings: dict[str, list[tuple[float, float]]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (one, many) in contenders.items():
            timings[name].append((per_call(one, seconds), per_call(many, seconds) / BATCH))
    result: dict[str, Any] = {"name": case.name, "note": predictor.fast_path_note}
    result["load_s"] = load_seconds
    for name, pairs in timings.items():
        result[f"{name}_row_us"] = statistics.median(p[0] for p in pairs) * 1e6
        result[f"{name}_batch_us"] = statistics.median(p[1] for p in pairs) * 1e6
    return result


def table(results: list[dict[str, Any]]) -> str:
    """A markdown table of the results."""
    lines = [
        "| model | one row: fast | model's predict | x | pyfunc | "
        f"{BATCH} rows, per row: fast | model's predict | x | proof at start-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "fast_row_us" not in r:
            lines.append(f"| {r['name']} | {r['note']} |||||||")
            continue
        lines.append(
            f"| {r['name']} | {r['fast_row_us']:.0f} us | {r['model_row_us']:.0f} us | "
            f"{r['model_row_us'] / r['fast_row_us']:.0f}x | {r['pyfunc_row_us']:.0f} us | "
            f"{r['fast_batch_us']:.2f} us | {r['model_batch_us']:.2f} us | "
            f"{r['model_batch_us'] / r['fast_batch_us']:.1f}x | {r['load_s']:.2f} s |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per contender per round")
    parser.add_argument("--only", default="", help="measure the model types whose name has this")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    import sklearn.ensemble  # noqa: F401 (loads the OpenMP and BLAS pools to report)
    from threadpoolctl import threadpool_info

    threads = {info["user_api"]: info["num_threads"] for info in threadpool_info()}
    print(f"thread pools: {threads}", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as root:
        for case in cases():
            if args.only.lower() in case.name.lower():
                results.append(measure(case, args.rounds, args.seconds, Path(root)))
                print(f"measured {case.name}", file=sys.stderr)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
