"""Start-up and serving of the mlstack MLflow tracking server."""
