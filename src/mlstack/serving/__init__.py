"""mlstack inference server: SageMaker's hosting contract for MLflow pyfunc models."""
