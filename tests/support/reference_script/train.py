"""A reference-style training script, as its authors write it for SageMaker's scikit-learn
container and MLflow 2.x: argparse for SageMaker's `--key value` hyperparameters and SM_*
paths, an explicit tracking URI, a run, params, metrics, and an unmodified
`mlflow.sklearn.log_model(model, "model")`. The tests run it unchanged, with and without a
requirements.txt (requirements/*.txt), through the training image's script mode and through
SageMaker SDK v3's driver. Nothing in it knows about mlstack.
"""

import argparse
import os

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestRegressor


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking_uri", type=str, default=None)
    parser.add_argument("--experiment_name", type=str, default=None)
    parser.add_argument("--n-estimators", type=int, default=10)
    parser.add_argument("--min-samples-leaf", type=int, default=3)
    parser.add_argument("--features", type=str, required=True)
    parser.add_argument("--target", type=str, required=True)
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", type=str, default=os.environ.get("SM_CHANNEL_TEST"))
    args, _ = parser.parse_known_args()
    return args


def main():
    args = parse_args()
    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    if args.experiment_name:
        mlflow.set_experiment(args.experiment_name)
    features = args.features.split()
    train = pd.read_csv(os.path.join(args.train, "train.csv"))
    test = pd.read_csv(os.path.join(args.test, "test.csv"))

    with mlflow.start_run():
        mlflow.log_params(
            {"n-estimators": args.n_estimators, "min-samples-leaf": args.min_samples_leaf}
        )
        model = RandomForestRegressor(
            n_estimators=args.n_estimators,
            min_samples_leaf=args.min_samples_leaf,
            random_state=0,
        )
        model.fit(train[features], train[args.target])
        errors = np.abs(model.predict(test[features]) - test[args.target])
        for q in (10, 50, 90):
            value = float(np.percentile(errors, q))
            print(f"AE-at-{q}th-percentile: {value:.6f}", flush=True)
            mlflow.log_metric(f"AE-at-{q}th-percentile", value)
        mlflow.sklearn.log_model(model, "model")
        print(f"mlflow {mlflow.__version__}: model logged", flush=True)


if __name__ == "__main__":
    main()
