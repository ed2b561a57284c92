"""The built-in job's MLflow model (mlstack.training.model)."""

from __future__ import annotations

from mlstack.training.model import pinned_requirements


def test_model_requirements_are_pinned_without_inference() -> None:
    assert pinned_requirements() == [
        "mlflow==3.17.2",
        "pandas==3.1.1",
        "scikit-learn==1.9.1",
        "skops==0.16.0",
    ]
