"""`mlstack aws tune` (`make tune`): a SageMaker hyperparameter tuning job over the training
image, its training jobs tracked in MLflow under one parent run.

The tuning itself (objective, metric regex, ranges, the parent run) is `mlstack.cli.tuning`'s,
shared with `mlstack local hpo`; here SageMaker runs the jobs. The parent run is named after
the tuning job; its id goes to every job as the static hyperparameter parent-run-id. While
the job runs this also sets mlflow.parentRunId on any run of the job that lacks it (the
training image tags its run with sagemaker.training_job_name, which SageMaker sets to
TUNING-JOB-NNN-XXXXXXXX; a user's own image may ignore parent-run-id), then records the
best job on the parent run and prints that job's name.

The SageMaker Python SDK v3 builds and starts it: a `ModelTrainer` (training_mode
SAGEMAKER_TRAINING_JOB) describes the jobs, v3's `HyperparameterTuner` the tuning. The
session's default bucket and prefix are OUTPUT_S3_URI's, so what the SDK stages goes there
and it never creates a bucket of its own.

With SOURCE_DIR and ENTRY_POINT the training jobs run that script in the training image
(`SourceCode`): a tuning job cannot replace the image's entrypoint, so v3 uploads SOURCE_DIR
as sourcedir.tar.gz to the output bucket and names it in the hyperparameters
`sagemaker_program` / `sagemaker_submit_directory`, SageMaker's script-mode contract, which
the image's script mode follows; it also stages its own drivers there as a channel
`sm_drivers`, which the image does not use. The script must print the objective as
`AE-at-50th-percentile: VALUE`; its runs are tagged and nested by the image's MLflow plugin.
"""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlstack.cli import tuning
from mlstack.cli.aws.common import (
    SDK_CONFIG,
    AwsScriptError,
    account_id,
    boto_session,
    ecr_image_uri,
    sagemaker_sdk_logging,
    source_code,
)
from mlstack.cli.channels import split_names, target_and_features
from mlstack.cli.settings import AwsSettings
from mlstack.core.waiting import poll

TERMINAL = {"Completed", "Failed", "Stopped"}
TUNING_TAG = "sagemaker.tuning_job_name"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")


@dataclass(frozen=True)
class TuningJob:
    """Everything the tuning job needs, checked."""

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
    source_code: Any  # v3's SourceCode for the user's script, or None: the built-in model


def default_job_name(now: datetime) -> str:
    """mlstack-YYYYmmdd-HHMMSS: unique enough, within SageMaker's 32 characters."""
    return f"mlstack-{now:%Y%m%d-%H%M%S}"


def static_hyperparameters(settings: AwsSettings, training_tracking_uri: str) -> dict[str, str]:
    """The fixed hyperparameters every training job gets (names as the reference's)."""
    # The channels in DATA_S3_URI are usually DATA_DIR uploaded: its hyperparameters.json
    # (from `mlstack data`) gives the default target and features.
    target, features = target_and_features(settings.data_dir, settings.target, settings.features)
    values = {
        "tracking_uri": training_tracking_uri,
        "experiment_name": settings.experiment_name,
        "target": target,
        "features": " ".join(features or []),
        "registered-model-name": settings.registered_model_name,
        "random-state": settings.random_state,
    }
    return {name: value for name, value in values.items() if value}


def job_environment(settings: AwsSettings) -> dict[str, str]:
    """MLflow credentials for the jobs, when the tracking server has basic-auth on.

    SageMaker shows a job's environment to anyone who may describe the job: use a user that
    may only edit the experiment, not the admin.
    """
    env = settings.tracking_credentials()
    if env:
        print(
            "warning: MLflow credentials go into the training jobs' environment, which "
            "DescribeTrainingJob shows; use a user limited to the experiment",
            file=sys.stderr,
        )
    return env


def tuning_job(settings: AwsSettings, session, tracking_uri: str) -> TuningJob:
    """Read and check the settings."""
    job_name = settings.tuning_job_name or default_job_name(datetime.now(UTC))
    if not NAME_PATTERN.match(job_name):
        raise AwsScriptError(
            f"TUNING_JOB_NAME must be 1-32 letters, digits and hyphens, got {job_name!r}"
        )
    data = settings.require("data_s3_uri").rstrip("/")
    output = settings.require("output_s3_uri").rstrip("/")
    for name, uri in (("DATA_S3_URI", data), ("OUTPUT_S3_URI", output)):
        if not uri.startswith("s3://"):
            raise AwsScriptError(f"{name} must be an s3:// URI, got {uri!r}")
    max_jobs, parallel = settings.tuning_max_jobs, settings.tuning_max_parallel_jobs
    if parallel > max_jobs:
        raise AwsScriptError("TUNING_MAX_PARALLEL_JOBS must not exceed TUNING_MAX_JOBS")
    subnets = split_names(settings.sagemaker_subnets)
    groups = split_names(settings.sagemaker_security_group_ids)
    if bool(subnets) != bool(groups):
        raise AwsScriptError(
            "set both SAGEMAKER_SUBNETS and SAGEMAKER_SECURITY_GROUP_IDS, or neither"
        )
    return TuningJob(
        job_name=job_name,
        image=settings.training_image_uri or ecr_image_uri(session, "training"),
        role=settings.require("sagemaker_role_arn"),
        data_s3_uri=data,
        output_s3_uri=output,
        instance_type=settings.sagemaker_instance_type,
        max_jobs=max_jobs,
        max_parallel_jobs=parallel,
        static_hyperparameters=static_hyperparameters(
            settings, settings.training_tracking_uri or tracking_uri
        ),
        environment=job_environment(settings),
        subnets=subnets,
        security_group_ids=groups,
        source_code=source_code(settings),
    )


def sdk_session(session, output_s3_uri: str):
    """v3's Session on the boto3 session: its default bucket and prefix are OUTPUT_S3_URI's
    (where v3 stages a script's code), telemetry off."""
    from sagemaker.core.helper.session_helper import Session

    bucket, _, prefix = output_s3_uri[len("s3://") :].partition("/")
    return Session(
        boto_session=session,
        default_bucket=bucket,
        default_bucket_prefix=prefix or None,
        sagemaker_config=SDK_CONFIG,
    )


def make_trainer(job: TuningJob, sagemaker_session: Any):
    """The tuning's training jobs, described by a v3 ModelTrainer. v3 checks the role here
    (iam:SimulatePrincipalPolicy and its trust policy; SAGEMAKER_VALIDATE_ROLE=false skips
    it): a role SageMaker cannot use is one line before anything starts."""
    from sagemaker.core.helper.iam_role_resolver import RoleValidationError
    from sagemaker.train import ModelTrainer
    from sagemaker.train.configs import Compute, Networking, OutputDataConfig, Tag

    networking = None
    if job.subnets:
        networking = Networking(subnets=job.subnets, security_group_ids=job.security_group_ids)
    try:
        return ModelTrainer(
            sagemaker_session=sagemaker_session,
            training_image=job.image,
            role=job.role,
            base_job_name=job.job_name,
            compute=Compute(instance_type=job.instance_type, instance_count=1),
            output_data_config=OutputDataConfig(s3_output_path=job.output_s3_uri),
            hyperparameters=dict(job.static_hyperparameters),
            environment=job.environment,
            networking=networking,
            tags=[Tag(key="project", value="mlstack")],
            source_code=job.source_code,
        )
    except RoleValidationError as error:
        reason = " ".join(str(error).strip().splitlines()[:2])
        raise AwsScriptError(f"SAGEMAKER_ROLE_ARN: {reason}") from None


def make_tuner(job: TuningJob, trainer: Any, parent_run_id: str):
    """The reference's HyperparameterTuner over the trainer's jobs, nested under the run."""
    from sagemaker.core.parameter import IntegerParameter
    from sagemaker.train.tuner import HyperparameterTuner

    trainer.hyperparameters = {**trainer.hyperparameters, "parent-run-id": parent_run_id}
    return HyperparameterTuner(
        trainer,
        objective_metric_name=tuning.OBJECTIVE,
        objective_type=tuning.OBJECTIVE_TYPE,
        metric_definitions=tuning.METRIC_DEFINITIONS,
        hyperparameter_ranges={
            name: IntegerParameter(low, high) for name, (low, high) in tuning.RANGES.items()
        },
        max_jobs=job.max_jobs,
        max_parallel_jobs=job.max_parallel_jobs,
    )


def link_children(tracking, experiment_id: str, parent_id: str, job_name: str) -> int:
    """Set mlflow.parentRunId on the runs of this tuning job's training jobs; return how
    many runs are linked in all."""
    own = re.compile(rf"^{re.escape(job_name)}-\d{{3}}-[0-9a-f]{{8}}$")
    runs = tracking.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tuning.JOB_TAG}` LIKE '{job_name}-%'",
        max_results=1000,
    )
    linked = 0
    for run in runs:
        if run.info.run_id == parent_id or not own.match(run.data.tags.get(tuning.JOB_TAG, "")):
            continue
        if run.data.tags.get(tuning.PARENT_TAG) != parent_id:
            tracking.set_tag(run.info.run_id, tuning.PARENT_TAG, parent_id)
        linked += 1
    return linked


@dataclass
class SageMakerJobs:
    """The tuning's backend on SageMaker: a HyperparameterTuner runs the jobs."""

    job: TuningJob
    trainer: Any
    sm: Any
    tracking: Any
    experiment_id: str
    poll_seconds: float

    def run_jobs(self, parent_run_id: str) -> tuning.Best | None:
        """Start the tuning job, follow it to its end, record its counters; the best job."""
        tuner = make_tuner(self.job, self.trainer, parent_run_id)
        tuner.tune(
            {"train": f"{self.job.data_s3_uri}/train", "test": f"{self.job.data_s3_uri}/test"},
            job_name=self.job.job_name,
            wait=False,
        )
        description = self.follow(parent_run_id)
        counters = description.get("TrainingJobStatusCounters") or {}
        for name, value in counters.items():
            self.tracking.log_metric(parent_run_id, f"jobs.{name}", float(value))
        status = description["HyperParameterTuningJobStatus"]
        if status != "Completed":
            raise tuning.TuningFailed(
                f"tuning job {self.job.job_name} ended {status}"
                f": {description.get('FailureReason', 'see the SageMaker console')}"
            )
        best = description.get("BestTrainingJob") or {}
        if not best:
            return None
        self.tracking.set_tag(parent_run_id, "sagemaker.best_training_job", best["TrainingJobName"])
        objective = best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        return tuning.Best(
            job_name=best["TrainingJobName"],
            objective=float(objective["Value"]) if "Value" in objective else None,
            hyperparameters=best.get("TunedHyperParameters") or {},
        )

    def follow(self, parent_run_id: str) -> dict[str, Any]:
        """Poll the tuning job until it ends, linking runs as they appear; its description.

        No bound of its own: SageMaker ends a tuning job (MaxRuntimeInSeconds, or its jobs')."""
        name = self.job.job_name

        def check() -> dict[str, Any] | None:
            description = self.sm.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name
            )
            status = description["HyperParameterTuningJobStatus"]
            linked = link_children(self.tracking, self.experiment_id, parent_run_id, name)
            counters = description.get("TrainingJobStatusCounters") or {}
            print(
                f"{name}: {status}, jobs {counters}, {linked} runs under the parent",
                file=sys.stderr,
            )
            return description if status in TERMINAL else None

        return poll(check, timeout=None, interval=self.poll_seconds)


def main(settings: AwsSettings) -> None:
    """Run the tuning job under one MLflow parent run; print the best training job's name."""
    from mlflow import MlflowClient

    sagemaker_sdk_logging()
    tracking_uri = settings.require("mlflow_tracking_uri")
    session = boto_session(settings)
    account_id(session)
    job = tuning_job(settings, session, tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment = tuning.experiment_id(client, settings.experiment_name)
    backend = SageMakerJobs(
        job=job,
        trainer=make_trainer(job, sdk_session(session, job.output_s3_uri)),
        sm=session.client("sagemaker"),
        tracking=client,
        experiment_id=experiment,
        poll_seconds=float(settings.tuning_poll_seconds),
    )
    params = tuning.search_space(
        job.max_jobs,
        job.max_parallel_jobs,
        **{"instance-type": job.instance_type, "training-image": job.image},
    )
    tags = {TUNING_TAG: job.job_name, "mlflow.source.type": "JOB"}
    try:
        # stdout is the best job's name alone (scripts read it): MLflow's run links, which it
        # writes to stdout when it tracks to a server, go to stderr with the logs.
        with contextlib.redirect_stdout(sys.stderr):
            _, best = tuning.drive(client, experiment, job.job_name, params, backend, tags=tags)
    except tuning.TuningFailed as error:
        raise AwsScriptError(str(error)) from None
    print(best.job_name)
