"""`make tune`: a SageMaker hyperparameter tuning job over the training image, its training
jobs tracked in MLflow under one parent run.

  python -m aws.tune

The reference's tuner: n-estimators 50-200 and min-samples-leaf 1-10 (integers), minimising
the median absolute error that the training image logs as `AE-at-50th-percentile: VALUE`.
This script opens a parent MLflow run named after the tuning job and starts the job with the
parent's id as the static hyperparameter parent-run-id, so each training job's run is nested
under it from the start. While the job runs it also sets mlflow.parentRunId on any run of the
job that lacks it (the training image tags its run with sagemaker.training_job_name, which
SageMaker sets to TUNING-JOB-NNN-XXXXXXXX; an older image may not know parent-run-id), then
records the best job on the parent run and prints that job's name.

With SOURCE_DIR and ENTRY_POINT the training jobs run that script in the training image
(SageMaker script mode: the SDK uploads SOURCE_DIR as sourcedir.tar.gz next to
OUTPUT_S3_URI); the script must print the objective as `AE-at-50th-percentile: VALUE`, and
its runs are tagged and nested by the image's MLflow plugin.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aws.common import (
    ROOT,
    AwsScriptError,
    account_id,
    boto_session,
    ecr_image_uri,
    main_wrapper,
    sagemaker_sdk_logging,
    script_mode,
    setting,
    whole_number,
)
from aws.invoke_endpoint import target_and_features

OBJECTIVE = "AE-at-50th-percentile"
# The training image prints each metric as `name: value` in fixed-point notation.
METRIC_DEFINITIONS = [{"Name": OBJECTIVE, "Regex": r"AE-at-50th-percentile: ([0-9.]+).*$"}]
RANGES = {"n-estimators": (50, 200), "min-samples-leaf": (1, 10)}
DEFAULT_EXPERIMENT = "mlstack-tuning"
DEFAULT_DATA_DIR = ROOT / "data" / "diabetes"
DEFAULT_INSTANCE_TYPE = "ml.m5.large"
TERMINAL = {"Completed", "Failed", "Stopped"}
PARENT_TAG = "mlflow.parentRunId"
JOB_TAG = "sagemaker.training_job_name"
TUNING_TAG = "sagemaker.tuning_job_name"
# SDK defaults config: no usage telemetry to AWS from this script.
SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


@dataclass(frozen=True)
class TuningSettings:
    """Everything the tuning job needs, from the environment."""

    job_name: str
    image: str
    role: str
    data_s3_uri: str
    output_s3_uri: str
    instance_type: str
    max_jobs: int
    max_parallel_jobs: int
    static_hyperparameters: dict[str, str]
    environment: dict[str, str]
    subnets: list[str]
    security_group_ids: list[str]
    script: dict[str, str]  # source_dir / entry_point, or {} for the built-in model


def default_job_name(now: datetime) -> str:
    """mlstack-YYYYmmdd-HHMMSS: unique enough, within SageMaker's 32 characters."""
    return f"mlstack-{now:%Y%m%d-%H%M%S}"


def split_list(raw: str) -> list[str]:
    return [item for item in re.split(r"[\s,]+", raw) if item]


def static_hyperparameters(training_tracking_uri: str, experiment: str) -> dict[str, str]:
    """The fixed hyperparameters every training job gets (names as the reference's)."""
    # The channels in DATA_S3_URI are usually DATA_DIR uploaded: its hyperparameters.json
    # (from scripts/prepare_data.py) gives the default target and features.
    target, features = target_and_features(Path(setting("DATA_DIR", str(DEFAULT_DATA_DIR))))
    values = {
        "tracking_uri": training_tracking_uri,
        "experiment_name": experiment,
        "target": target,
        "features": " ".join(features or []),
        "registered-model-name": setting("REGISTERED_MODEL_NAME", ""),
        "random-state": setting("RANDOM_STATE", ""),
    }
    return {name: value for name, value in values.items() if value}


def job_environment() -> dict[str, str]:
    """MLflow credentials for the jobs, when the tracking server has basic-auth on.

    SageMaker shows a job's environment to anyone who may describe the job: use a user that
    may only edit the experiment, not the admin.
    """
    env = {}
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if env:
        print(
            "warning: MLflow credentials go into the training jobs' environment, which "
            "DescribeTrainingJob shows; use a user limited to the experiment",
            file=sys.stderr,
        )
    return env


def load_settings(session, tracking_uri: str, experiment: str) -> TuningSettings:
    """Read and check the settings."""
    job_name = setting("TUNING_JOB_NAME", "") or default_job_name(datetime.now(UTC))
    if not NAME_PATTERN.match(job_name):
        raise AwsScriptError(
            f"TUNING_JOB_NAME must be 1-32 letters, digits and hyphens, got {job_name!r}"
        )
    data = setting("DATA_S3_URI").rstrip("/")
    output = setting("OUTPUT_S3_URI").rstrip("/")
    for name, uri in (("DATA_S3_URI", data), ("OUTPUT_S3_URI", output)):
        if not uri.startswith("s3://"):
            raise AwsScriptError(f"{name} must be an s3:// URI, got {uri!r}")
    max_jobs = whole_number("TUNING_MAX_JOBS", 10)
    parallel = whole_number("TUNING_MAX_PARALLEL_JOBS", 2)
    if parallel > max_jobs:
        raise AwsScriptError("TUNING_MAX_PARALLEL_JOBS must not exceed TUNING_MAX_JOBS")
    subnets = split_list(setting("SAGEMAKER_SUBNETS", ""))
    groups = split_list(setting("SAGEMAKER_SECURITY_GROUP_IDS", ""))
    if bool(subnets) != bool(groups):
        raise AwsScriptError(
            "set both SAGEMAKER_SUBNETS and SAGEMAKER_SECURITY_GROUP_IDS, or neither"
        )
    return TuningSettings(
        job_name=job_name,
        image=setting("TRAINING_IMAGE_URI", "") or ecr_image_uri(session, "training"),
        role=setting("SAGEMAKER_ROLE_ARN"),
        data_s3_uri=data,
        output_s3_uri=output,
        instance_type=setting("SAGEMAKER_INSTANCE_TYPE", DEFAULT_INSTANCE_TYPE),
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        static_hyperparameters=static_hyperparameters(
            setting("TRAINING_TRACKING_URI", tracking_uri), experiment
        ),
        environment=job_environment(),
        subnets=subnets,
        security_group_ids=groups,
        script=script_mode(),
    )


def make_tuner(settings: TuningSettings, sagemaker_session: Any, parent_run_id: str):
    """The SageMaker SDK estimator and the reference's HyperparameterTuner."""
    from sagemaker.estimator import Estimator
    from sagemaker.tuner import HyperparameterTuner, IntegerParameter

    estimator = Estimator(
        image_uri=settings.image,
        role=settings.role,
        instance_count=1,
        instance_type=settings.instance_type,
        output_path=settings.output_s3_uri,
        hyperparameters={**settings.static_hyperparameters, "parent-run-id": parent_run_id},
        environment=settings.environment or None,
        subnets=settings.subnets or None,
        security_group_ids=settings.security_group_ids or None,
        sagemaker_session=sagemaker_session,
        tags=[{"Key": "project", "Value": "mlstack"}],
        # Script mode: where the SDK uploads sourcedir.tar.gz (default: the session bucket).
        code_location=settings.output_s3_uri if settings.script else None,
        **settings.script,
    )
    return HyperparameterTuner(
        estimator,
        objective_metric_name=OBJECTIVE,
        objective_type="Minimize",
        metric_definitions=METRIC_DEFINITIONS,
        hyperparameter_ranges={
            name: IntegerParameter(low, high) for name, (low, high) in RANGES.items()
        },
        max_jobs=settings.max_jobs,
        max_parallel_jobs=settings.max_parallel_jobs,
    )


class ParentRun:
    """The tuning job's MLflow run and the linking of its training jobs' runs to it."""

    def __init__(self, tracking_uri: str, experiment: str) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment_id = (
            found.experiment_id if found else self.client.create_experiment(experiment)
        )
        self.run_id = ""

    def start(self, settings: TuningSettings) -> str:
        """Open the run, named after the tuning job, with the tuner's settings as params."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=settings.job_name,
            tags={TUNING_TAG: settings.job_name, "mlflow.source.type": "JOB"},
        )
        self.run_id = run.info.run_id
        params = {
            "objective": f"minimize {OBJECTIVE}",
            "max-jobs": settings.max_jobs,
            "max-parallel-jobs": settings.max_parallel_jobs,
            "instance-type": settings.instance_type,
            "training-image": settings.image,
            **{f"range.{name}": f"{low}-{high}" for name, (low, high) in RANGES.items()},
        }
        for name, value in params.items():
            self.client.log_param(self.run_id, name, str(value))
        return self.run_id

    def link_children(self, job_name: str) -> int:
        """Set mlflow.parentRunId on the runs of this tuning job's training jobs; return
        how many runs are linked in all."""
        own = re.compile(rf"^{re.escape(job_name)}-\d{{3}}-[0-9a-f]{{8}}$")
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{JOB_TAG}` LIKE '{job_name}-%'",
            max_results=1000,
        )
        linked = 0
        for run in runs:
            if run.info.run_id == self.run_id or not own.match(run.data.tags.get(JOB_TAG, "")):
                continue
            if run.data.tags.get(PARENT_TAG) != self.run_id:
                self.client.set_tag(run.info.run_id, PARENT_TAG, self.run_id)
            linked += 1
        return linked

    def finish(self, description: dict[str, Any]) -> None:
        """Record the outcome and the best training job; end the run."""
        status = description["HyperParameterTuningJobStatus"]
        best = description.get("BestTrainingJob") or {}
        if best:
            self.client.set_tag(self.run_id, "sagemaker.best_training_job", best["TrainingJobName"])
            for name, value in (best.get("TunedHyperParameters") or {}).items():
                self.client.log_param(self.run_id, f"best.{name}", value)
            objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
            if "Value" in objective:
                self.client.log_metric(self.run_id, f"best.{OBJECTIVE}", float(objective["Value"]))
        counters = description.get("TrainingJobStatusCounters") or {}
        for name, value in counters.items():
            self.client.log_metric(self.run_id, f"jobs.{name}", float(value))
        self.end("FINISHED" if status == "Completed" else "FAILED")

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


def follow(sm, parent: ParentRun, job_name: str, poll_seconds: float) -> dict[str, Any]:
    """Poll the tuning job until it ends, linking runs as they appear; return its description."""
    while True:
        description = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=job_name)
        status = description["HyperParameterTuningJobStatus"]
        linked = parent.link_children(job_name)
        counters = description.get("TrainingJobStatusCounters") or {}
        print(
            f"{job_name}: {status}, jobs {counters}, {linked} runs under the parent",
            file=sys.stderr,
        )
        if status in TERMINAL:
            return description
        time.sleep(poll_seconds)


@main_wrapper
def main() -> int:
    tracking_uri = setting("MLFLOW_TRACKING_URI")
    experiment = setting("EXPERIMENT_NAME", DEFAULT_EXPERIMENT)
    session = boto_session()
    account_id(session)
    settings = load_settings(session, tracking_uri, experiment)
    sagemaker_sdk_logging()
    import sagemaker

    sagemaker_session = sagemaker.Session(boto_session=session, sagemaker_config=SDK_CONFIG)
    parent = ParentRun(tracking_uri, experiment)
    parent.start(settings)
    try:
        tuner = make_tuner(settings, sagemaker_session, parent.run_id)
        tuner.fit(
            {"train": f"{settings.data_s3_uri}/train", "test": f"{settings.data_s3_uri}/test"},
            job_name=settings.job_name,
            wait=False,
        )
        description = follow(
            session.client("sagemaker"),
            parent,
            settings.job_name,
            float(whole_number("TUNING_POLL_SECONDS", 60)),
        )
    except BaseException:
        parent.end("KILLED")
        raise
    parent.finish(description)
    if description["HyperParameterTuningJobStatus"] != "Completed":
        raise AwsScriptError(
            f"tuning job {settings.job_name} ended {description['HyperParameterTuningJobStatus']}"
            f": {description.get('FailureReason', 'see the SageMaker console')}"
        )
    print(description.get("BestTrainingJob", {}).get("TrainingJobName", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
