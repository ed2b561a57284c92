"""A training script written for SageMaker's scikit-learn container, unchanged for mlstack.

    SKLearn(entry_point="train.py", source_dir="examples/gradient_boosting", ...)
    make local-train SOURCE_DIR=examples/gradient_boosting ENTRY_POINT=train.py

A GradientBoostingRegressor on the train/test channels that `mlstack data` writes.
It reads its settings the way SageMaker's script mode passes them: hyperparameters as
`--name value` arguments, paths from the SM_* environment variables. It tracks with a bare
`mlflow.start_run()`: the training image sets MLFLOW_TRACKING_URI and
MLFLOW_EXPERIMENT_NAME, tags the run with the job and nests it under a tuning run.
"""

import argparse
import logging
import os

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def parse_args():
    parser = argparse.ArgumentParser()
    # Hyperparameters sent by the client arrive as command-line arguments.
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--min-samples-leaf", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--features", type=str, required=True)  # space-separated names
    parser.add_argument("--target", type=str, required=True)
    # Data, model and output directories: SageMaker's defaults.
    parser.add_argument("--model-dir", type=str, default=os.environ.get("SM_MODEL_DIR"))
    parser.add_argument("--train", type=str, default=os.environ.get("SM_CHANNEL_TRAIN"))
    parser.add_argument("--test", type=str, default=os.environ.get("SM_CHANNEL_TEST"))
    parser.add_argument("--train-file", type=str, default="train.csv")
    parser.add_argument("--test-file", type=str, default="test.csv")
    # Anything else the platform passes (tracking_uri, parent-run-id, ...) is not ours.
    args, _ = parser.parse_known_args()
    return args


def main():
    print("train.py: started", flush=True)
    args = parse_args()
    features = args.features.split()
    train = pd.read_csv(os.path.join(args.train, args.train_file))
    test = pd.read_csv(os.path.join(args.test, args.test_file))
    x_train, y_train = train[features].astype("float64"), train[args.target]
    x_test, y_test = test[features].astype("float64"), test[args.target]

    with mlflow.start_run():
        params = {
            "n-estimators": args.n_estimators,
            "min-samples-leaf": args.min_samples_leaf,
            "learning-rate": args.learning_rate,
            "max-depth": args.max_depth,
            "features": args.features,
            "target": args.target,
        }
        mlflow.log_params(params)
        logging.info("training GradientBoostingRegressor %s", params)
        model = GradientBoostingRegressor(
            n_estimators=args.n_estimators,
            min_samples_leaf=args.min_samples_leaf,
            learning_rate=args.learning_rate,
            max_depth=args.max_depth,
            random_state=0,
        )
        model.fit(x_train, y_train)

        abs_err = np.abs(model.predict(x_test) - y_test)
        for q in [10, 50, 90]:
            value = float(np.percentile(abs_err, q))
            # SageMaker metric definitions (and the tuner) read these lines.
            print(f"AE-at-{q}th-percentile: {value:.6f}", flush=True)
            mlflow.log_metric(f"AE-at-{q}th-percentile", value)

        signature = mlflow.models.infer_signature(x_train.head(), model.predict(x_train.head()))
        mlflow.sklearn.log_model(model, "model", signature=signature)
        # model.tar.gz: the same MLflow model, for a SageMaker endpoint of the inference image.
        mlflow.sklearn.save_model(model, args.model_dir, signature=signature)


if __name__ == "__main__":
    main()
