"""Fitting the RandomForestRegressor, scoring it, and drawing predicted against actual."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from mlstack.training.data import Dataset
from mlstack.training.hyperparameters import Hyperparameters

log = logging.getLogger(__name__)

PERCENTILES = (10, 50, 90)


def fit(hyperparameters: Hyperparameters, train: Dataset) -> RandomForestRegressor:
    """Train the forest on every core, as the reference job does."""
    model = RandomForestRegressor(
        n_estimators=hyperparameters.n_estimators,
        min_samples_leaf=hyperparameters.min_samples_leaf,
        random_state=hyperparameters.random_state,
        n_jobs=-1,
    )
    model.fit(train.features, train.target)
    # Saved to predict on one thread: with n_jobs=-1 scikit-learn sums the trees' answers in
    # whichever order its threads finish, so one request's prediction changed in its last bit
    # from call to call. Serving workers run one prediction at a time per CPU anyway.
    model.set_params(n_jobs=None)
    return model


def evaluate(predictions: np.ndarray, test: Dataset) -> dict[str, float]:
    """Absolute-error percentiles (the reference's metrics), RMSE, MAE and R² on the test set."""
    actual = test.target.to_numpy()
    abs_err = np.abs(predictions - actual)
    metrics = {f"AE-at-{q}th-percentile": float(np.percentile(abs_err, q)) for q in PERCENTILES}
    metrics["rmse"] = float(np.sqrt(mean_squared_error(actual, predictions)))
    metrics["mae"] = float(mean_absolute_error(actual, predictions))
    if len(actual) > 1:  # R² is undefined on one sample
        metrics["r2"] = float(r2_score(actual, predictions))
    return metrics


def metric_line(name: str, value: float) -> str:
    """`name: value` in fixed-point notation: SageMaker's metric definitions are regular
    expressions over the log, e.g. the reference's `AE-at-50th-percentile: ([0-9.]+).*$`,
    which would misread 1e-05."""
    return f"{name}: {value:.6f}"


def plot_predictions(
    predictions: np.ndarray, test: Dataset, target: str, metrics: dict[str, float], path: Path
) -> Path:
    """Predicted against actual target on the test set, with the line of perfect predictions."""
    actual = test.target.to_numpy()
    figure = Figure(figsize=(6, 6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.scatter(actual, predictions, s=12, alpha=0.6, edgecolors="none")
    low = float(min(actual.min(), predictions.min()))
    high = float(max(actual.max(), predictions.max()))
    axes.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1, label="perfect")
    axes.set_xlabel(f"actual {target}")
    axes.set_ylabel(f"predicted {target}")
    summary = f"MAE {metrics['mae']:.4g}, RMSE {metrics['rmse']:.4g}"
    if "r2" in metrics:
        summary += f", R² {metrics['r2']:.3f}"
    axes.set_title(f"Test set, {len(actual)} rows: predicted vs actual\n{summary}")
    axes.legend(loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
