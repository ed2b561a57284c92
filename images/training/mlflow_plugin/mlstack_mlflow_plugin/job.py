"""What a training job gives the runs of its script: MLflow's settings and the job's tags.

Derived from SageMaker's own variables (settings.JobEnvironment), so a script gets the same
whether the image's entry point started it or SDK v3's driver did. The script-mode runner
(mlstack.training.script_mode) uses the same functions for its own calls to the server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlstack_mlflow_plugin.settings import JobEnvironment

JOB_KEY_TAG = "mlstack.job_key"
FAILURE_TAG = "mlstack.failure_reason"
FAILURE_TAG_LIMIT = 5000  # MLflow tag values hold up to 8000 characters


def hyperparameter(values: dict[str, Any], name: str) -> str:
    """A hyperparameter by name, '-' and '_' alike, as text ('' when absent).

    The SDKs send values JSON-encoded or plain; drivers decode them or not: a JSON string
    ('"abc"') is decoded once more, so every path gives the same text.
    """
    wanted = name.replace("_", "-").lower()
    for key, value in values.items():
        if str(key).strip().replace("_", "-").lower() != wanted:
            continue
        if isinstance(value, str):
            try:
                decoded = json.loads(value)
            except ValueError:
                decoded = value
            value = decoded if isinstance(decoded, str) else value
        else:
            value = json.dumps(value)
        return str(value).strip()
    return ""


def tracking_variables(job: JobEnvironment) -> dict[str, str]:
    """MLflow's client variables for the job's script.

    The tracking_uri / experiment_name hyperparameters win over MLFLOW_TRACKING_URI /
    MLFLOW_EXPERIMENT_NAME. With no tracking URI at all, runs go to a file store in
    SM_OUTPUT_DATA_DIR (kept in output.tar.gz): MLflow 3's default store (sqlite) is not in
    mlflow-skinny, and MLflow 3.17 refuses a file store unless MLFLOW_ALLOW_FILE_STORE is set
    (a no-op for 2.x).
    """
    uri = hyperparameter(job.hyperparameters, "tracking-uri") or job.tracking_uri
    experiment = hyperparameter(job.hyperparameters, "experiment-name") or job.experiment_name
    variables = {"MLFLOW_TRACKING_URI": uri}
    if not uri:
        store = (Path(job.output_data_dir) / "mlruns").resolve().as_uri()
        variables = {"MLFLOW_TRACKING_URI": store, "MLFLOW_ALLOW_FILE_STORE": "true"}
    if experiment:
        variables["MLFLOW_EXPERIMENT_NAME"] = experiment
    return variables


def run_tags(job: JobEnvironment) -> dict[str, str]:
    """The job's identity on every run the script starts, and the tuning run's nesting."""
    name, region = job.job_name, job.region
    source = (
        f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{name}"
        if name and region
        else name or "mlstack-training"
    )
    tags = {
        "mlflow.source.type": "JOB",
        "mlflow.source.name": source,
        "mlstack.image": job.image,
        "mlstack.entry_point": job.entry_point,
        "sagemaker.instance_type": job.instance_type,
        "sagemaker.channels": ",".join(job.channels),
    }
    if name:
        tags["sagemaker.training_job_name"] = name
    if job.job_key:
        tags[JOB_KEY_TAG] = job.job_key
    parent = hyperparameter(job.hyperparameters, "parent-run-id")
    if parent:
        tags["mlflow.parentRunId"] = parent  # MLflow's UI nests the run under it
    return tags
