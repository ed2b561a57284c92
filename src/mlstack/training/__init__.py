"""The training image: one runner (script_mode) for the user's script or the image's built-in
one (builtin/random_forest.py, a scikit-learn RandomForestRegressor), tracked in MLflow."""
