"""mlstack inference server: SageMaker's hosting contract for MLflow pyfunc models."""

__version__ = "0.1.0"
