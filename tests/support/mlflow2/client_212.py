"""Run with MLflow 2.12.1 against our 3.17 server: the reference's clients log a run.

Prints one JSON line: the run id and the model's predictions, to compare in 3.17.
"""

import json
import sys

import mlflow
import numpy as np
from sklearn.linear_model import LinearRegression

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("client-2.12")
features = np.arange(20, dtype=float).reshape(10, 2)
model = LinearRegression().fit(features, features @ np.array([2.0, -1.0]) + 3)
with mlflow.start_run() as run:
    mlflow.log_params({"alpha": "0.5", "client": mlflow.__version__})
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.sklearn.log_model(model, "model")
print(
    "LOGGED "
    + json.dumps({"run_id": run.info.run_id, "predictions": model.predict(features).tolist()})
)
