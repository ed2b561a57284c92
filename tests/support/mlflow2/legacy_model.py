"""Run with the MLflow 2.12.1 client stack (scikit-learn 1.5.2, numpy 1.26.4, pandas 2.3):
save a forest as an MLflow model in /tmp/legacy-model, as a user's older script would.

Prints one JSON line: the test rows and this environment's own predictions for them.
"""

import json

import mlflow
import mlflow.sklearn
import numpy as np
import pandas
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestRegressor

features, target = load_diabetes(return_X_y=True, as_frame=True)
train, test = features.iloc[:300], features.iloc[300:320]
model = RandomForestRegressor(n_estimators=20, random_state=0).fit(train, target.iloc[:300])
mlflow.sklearn.save_model(model, "/tmp/legacy-model", input_example=train.head(3))
print(
    "SAVED "
    + json.dumps(
        {
            "columns": list(test.columns),
            "rows": test.to_numpy().tolist(),
            "predictions": model.predict(test).tolist(),
            "versions": {
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "pandas": pandas.__version__,
                "mlflow": mlflow.__version__,
            },
        }
    )
)
