"""MLflow plugin of the training image: a user's script gets the job's MLflow settings, its
runs the job's tags, its scikit-learn models a format the image serves, and the models it
logs a monitoring baseline (baseline.py).

MLflow loads the provider (`provider.JobRunContext`, entry point group
`mlflow.run_context_provider`) at `import mlflow`, in every MLflow version a script's
requirements.txt may install (2.x and 3.x). The other modules import no MLflow at all, so the
script-mode runner uses them too (settings, job) without loading the client.
"""
