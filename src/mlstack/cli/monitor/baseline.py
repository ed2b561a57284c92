"""The model's baseline, found from its URI alone: models:/NAME@alias (or /VERSION) leads to
the model version, its run, and the baseline the training job recorded on that run
(`monitoring/baseline.json` and `monitoring/reference.csv`, written by the training image's
MLflow plugin: mlstack_mlflow_plugin.baseline)."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.core.errors import MlstackError

ARTIFACT_DIR = "monitoring"
BASELINE_FILE = "baseline.json"
REFERENCE_FILE = "reference.csv"
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


class BaselineError(MlstackError):
    """No baseline for the model; the message says why and what to do."""


@dataclass
class Baseline:
    """What the model was trained on, and which model version it is."""

    model_uri: str
    name: str
    version: str
    run_id: str
    experiment_id: str
    model_id: str | None
    features: list[dict[str, Any]]  # name, type, statistics (baseline.json)
    target: str | None
    prediction: str | None  # the reference's prediction column, when recorded
    reference: Any  # pandas DataFrame: features, target, prediction
    dataset: str = "train"
    source: str = ""  # where the training data came from, as the job saw it

    @property
    def feature_names(self) -> list[str]:
        return [feature["name"] for feature in self.features]

    def kind(self, name: str) -> str:
        """numeric or categorical, as the training data had it."""
        return next(f["type"] for f in self.features if f["name"] == name)

    def std(self, name: str) -> float | None:
        """The training data's standard deviation of a numeric feature."""
        return next((f.get("std") for f in self.features if f["name"] == name), None)


def resolve_version(client: Any, model_uri: str) -> Any:
    """The model version models:/NAME@alias or models:/NAME/VERSION names."""
    from mlflow.exceptions import MlflowException

    match = MODELS_URI.match(model_uri)
    if match is None:
        raise BaselineError(
            f"--model-uri {model_uri!r}: give a registered model, models:/NAME@alias or "
            "models:/NAME/VERSION"
        )
    name, alias, version = match["name"], match["alias"], match["version"]
    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as error:
        first = error.message.strip().splitlines()[0] if error.message else str(error)
        raise BaselineError(f"no model version {model_uri}: {first}") from None


def load(client: Any, model_uri: str) -> Baseline:
    """The baseline of the model version the URI names."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    version = resolve_version(client, model_uri)
    if not version.run_id:
        raise BaselineError(f"{model_uri} (version {version.version}) has no source run")
    run = client.get_run(version.run_id)
    with tempfile.TemporaryDirectory(prefix="mlstack-baseline-") as tmp:
        try:
            folder = Path(client.download_artifacts(version.run_id, ARTIFACT_DIR, tmp))
            document = json.loads((folder / BASELINE_FILE).read_text())
            reference = pd.read_csv(folder / REFERENCE_FILE)
        except (MlflowException, OSError, ValueError):
            raise BaselineError(
                f"run {version.run_id} of {model_uri} (version {version.version}) has no "
                f"monitoring baseline ({ARTIFACT_DIR}/{BASELINE_FILE}): train it with the "
                "training image, whose job records one for every model it logs"
            ) from None
    return Baseline(
        model_uri=model_uri,
        name=version.name,
        version=str(version.version),
        run_id=version.run_id,
        experiment_id=run.info.experiment_id,
        model_id=getattr(version, "model_id", None),
        features=document["features"],
        target=document.get("target"),
        prediction=document.get("prediction"),
        reference=reference,
        dataset=document.get("dataset", "train"),
        source=document.get("source", ""),
    )
