"""`mlstack monitor` (`make local-monitor`): compare an endpoint's captured traffic with the
model's training data; write the report; log it to MLflow as a monitoring run.

The same command reads the local stack's captures (no MLFLOW_TRACKING_URI: the stack of the
env file, its MinIO and its tracking server) and a SageMaker endpoint's in S3 (your AWS
credentials), since both are written in SageMaker's Data Capture format.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import requests

from mlstack.cli.errors import PROGRAM, CliError, first_line
from mlstack.cli.monitor import analysis, drift, report, tracking
from mlstack.cli.monitor.baseline import Baseline, load
from mlstack.cli.monitor.captures import Location, read_events, to_rows
from mlstack.cli.options import env_file_of, setting_option, shared_options
from mlstack.cli.settings import (
    LocalSettings,
    MonitorSettings,
    default_for_libraries,
    stack_tracking,
)
from mlstack.cli.settings import load as load_settings
from mlstack.core.errors import MlstackError
from mlstack.serving.capture_format import split_s3_uri

DRIFT_EXIT = 3  # --fail-on-drift: the status when drift is found (1 is an error, 2 usage)
DURATION = re.compile(r"^(?P<amount>\d+)(?P<unit>[smhd])$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str, option: str) -> int:
    """A duration such as 90s, 15m, 1h or 7d, in seconds."""
    match = DURATION.match(text.strip())
    if match is None or int(match["amount"]) == 0:
        raise MlstackError(f"{option} {text!r}: give a duration such as 30s, 15m, 1h or 7d")
    return int(match["amount"]) * UNITS[match["unit"]]


def moment(text: str, option: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC unless it says otherwise), or a duration meaning that long ago."""
    if DURATION.match(text.strip()):
        return now - timedelta(seconds=seconds(text, option))
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MlstackError(
            f"{option} {text!r}: give a time (2026-05-01T12:00:00Z) or a duration ago (24h)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def s3_client(endpoint_url: str) -> Any:
    """S3 (AWS_ENDPOINT_URL_S3 when set: MinIO); credentials from boto3's usual chain."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5)
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


def captures_s3(settings: MonitorSettings, env_file: Path) -> Any:
    """Where the captures are read: the local stack's MinIO, as its artifact bucket's user,
    when neither MLFLOW_TRACKING_URI nor AWS_ENDPOINT_URL_S3 is set and the stack's env file
    exists; else S3 (or AWS_ENDPOINT_URL_S3) with boto3's usual credentials."""
    if settings.mlflow_tracking_uri or settings.aws_endpoint_url_s3 or not env_file.is_file():
        return s3_client(settings.aws_endpoint_url_s3)
    return load_settings(LocalSettings, env_file).minio_s3()


def print_findings(summary: dict[str, Any]) -> None:
    """The verdict per feature on stdout."""
    print(f"{summary['events']} requests, {summary['rows']} rows in {summary['files']} files")
    if not summary["rows"]:
        print("no captured traffic in the range")
        return
    print(f"{'feature':24s} {'distance':>10s} {'p-value':>10s}  drift (rule)")
    columns = summary["features"] + ([summary["prediction"]] if summary["prediction"] else [])
    for column in columns:
        distance = report.num(column["distance"])
        p_value = report.num(column["p_value"])
        flag = "DRIFT" if column["drifted"] else "-"
        rule = report.rule(column)
        print(f"{column['name']:24s} {distance:>10s} {p_value:>10s}  {flag:5s} ({rule})")
    schema = summary["schema"]
    if schema["missing"] or schema["unexpected"]:
        print(f"missing features: {schema['missing']}; unexpected: {schema['unexpected']}")
    if summary.get("quality"):
        q = summary["quality"]
        print(f"ground truth: {q['rows']} rows, MAE {q['mae']:.4g}, RMSE {q['rmse']:.4g}")


def run_monitor(
    tracking_uri: str,
    s3: Any,
    model_uri: str,
    location: Location,
    since: datetime,
    until: datetime,
    options: analysis.Options,
    ground_truth: tuple[Path, str | None] | None,
    output_dir: Path,
    experiment: str | None,
) -> dict[str, Any]:
    """Everything the command does; the summary (with the MLflow run and the files)."""
    from mlflow import MlflowClient

    # A report's command prints findings, not MLflow's download bars (unless asked for them).
    default_for_libraries({"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    client = MlflowClient(tracking_uri)
    baseline: Baseline = load(client, model_uri)
    events, files = read_events(s3, location, since, until)
    traffic = to_rows(events, baseline.feature_names)
    traffic.files = files
    truth = None
    if ground_truth is not None:
        path, label = ground_truth
        truth, _ = analysis.read_ground_truth(path, label or baseline.target)
    summary = analysis.analyse(baseline, traffic, options, truth)
    summary["model"] = {
        "uri": model_uri,
        "name": baseline.name,
        "version": baseline.version,
        "run_id": baseline.run_id,
    }
    summary["captures"] = {
        "uri": location.uri,
        "endpoint": location.endpoint,
        "variant": location.variant,
        "since": analysis.iso(since),
        "until": analysis.iso(until),
    }
    experiment_id = _experiment_id(client, experiment) if experiment else None
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_name = f"monitor-{location.endpoint}-{stamp}"
    run_id = tracking.start_run(client, baseline, location.uri, experiment_id, run_name)
    summary["mlflow"] = {"tracking_uri": tracking_uri, "run_id": run_id}
    files = report.write(
        summary,
        baseline.reference,
        traffic.rows,
        baseline.prediction or baseline.target,
        output_dir,
    )
    tracking.finish_run(client, run_id, baseline, summary, files, traffic.rows)
    summary["report_files"] = [str(path) for path in files]
    return summary


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else client.create_experiment(name)


def option(field: str, help_text: str, *decls: str, **kwargs: Any) -> Any:
    return setting_option(MonitorSettings, field, help_text, *decls, **kwargs)


@click.command("monitor")
@option("model_name", "registered model")
@option("model_alias", "its alias")
@click.option("--model-uri", help="the model instead: models:/NAME@alias or models:/NAME/VERSION")
@option("capture_destination", "DestinationS3Uri [default the local stack's]")
@option("endpoint_name", "endpoint [default mlstack-MODEL_NAME]", "--endpoint")
@click.option("--variant", default="AllTraffic", show_default=True, help="production variant")
@click.option("--since", default="24h", show_default=True, help="from: a time, or 24h ago")
@click.option("--until", default=None, help="to: a time, or 1h ago [default now]")
@click.option("--window", default="1h", show_default=True, help="drift per window of 30s, 15m, 1h")
@click.option(
    "--stattest",
    type=click.Choice([drift.AUTO, drift.DISTANCE, drift.TEST]),
    default=drift.AUTO,
    show_default=True,
    help="what decides: the distance, the test, or auto (distance above 1,000 values)",
)
@click.option(
    "--distance-threshold",
    type=float,
    default=drift.DISTANCE_THRESHOLD,
    show_default=True,
    help="a feature drifts when its distance is above this",
)
@click.option(
    "--p-value",
    type=float,
    default=drift.P_VALUE,
    show_default=True,
    help="divided by the number of features (Bonferroni)",
)
@click.option(
    "--ground-truth",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV of inference_id and the label: adds MAE and RMSE",
)
@click.option("--label-column", help="the label's column [default the model's target]")
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="where report.html and summary.json go [default monitoring/ENDPOINT-TIME]",
)
@click.option("--experiment", help="MLflow experiment [default the training run's]")
@click.option("--fail-on-drift", is_flag=True, help=f"exit {DRIFT_EXIT} when drift is found")
@option("mlflow_tracking_uri", "the tracking server [default the local stack's]")
@option("aws_endpoint_url_s3", "S3 endpoint (MinIO)", "--s3-endpoint-url")
@shared_options()
@click.pass_context
def monitor(ctx: click.Context, **given: Any) -> None:
    """Compare an endpoint's captured traffic with the model's training data: drift per
    feature and for the predictions, missing and unexpected features, traffic over time,
    quality with --ground-truth. Writes report.html and summary.json and logs them to MLflow
    as a monitoring run of the model version."""
    from mlflow.exceptions import MlflowException

    names = ("model_name", "model_alias", "capture_destination", "endpoint_name")
    names += ("mlflow_tracking_uri", "aws_endpoint_url_s3")
    env_file = env_file_of(ctx)
    try:
        settings = load_settings(MonitorSettings, env_file, **{n: given[n] for n in names})
        tracking_uri = (
            stack_tracking(env_file, settings.mlflow_tracking_uri) or settings.tracking_uri
        )
        s3 = captures_s3(settings, env_file)
        now = datetime.now(UTC)
        since = moment(given["since"], "--since", now)
        until = moment(given["until"], "--until", now) if given["until"] else now
        if since >= until:
            raise MlstackError("--since must be before --until")
        options = analysis.Options(
            drift.Rule(given["stattest"], given["distance_threshold"], given["p_value"]),
            window_seconds=seconds(given["window"], "--window"),
        )
        endpoint = settings.endpoint_name or f"mlstack-{settings.model_name}"
        destination = settings.capture_uri
        try:
            split_s3_uri(destination)
        except ValueError as error:
            raise MlstackError(f"CAPTURE_DESTINATION {error}") from None
        location = Location(destination, endpoint, given["variant"])
        model_uri = given["model_uri"] or f"models:/{settings.model_name}@{settings.model_alias}"
        output = given["output_dir"] or Path("monitoring") / f"{endpoint}-{now:%Y%m%d-%H%M%S}"
        truth = (given["ground_truth"], given["label_column"]) if given["ground_truth"] else None
        summary = run_monitor(
            tracking_uri,
            s3,
            model_uri,
            location,
            since,
            until,
            options,
            truth,
            output,
            given["experiment"],
        )
    except MlflowException as error:
        raise CliError(f"MLflow at {tracking_uri}: {first_line(error.message)}") from None
    except requests.RequestException as error:
        raise CliError(f"cannot reach MLflow at {tracking_uri}: {error}") from None
    print_findings(summary)
    print(f"report: {Path(summary['report_files'][0]).resolve()}")
    print(f"MLflow run {summary['mlflow']['run_id']} at {summary['mlflow']['tracking_uri']}")
    drifted = summary["drift_detected"] or summary.get("prediction_drifted")
    if given["fail_on_drift"] and drifted:
        click.echo(f"{PROGRAM}: drift found (--fail-on-drift)", err=True)
        sys.exit(DRIFT_EXIT)
