"""A SageMaker-compatible training job: a scikit-learn RandomForestRegressor tracked in MLflow."""
