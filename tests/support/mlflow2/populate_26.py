"""Run with MLflow 2.6.0 against its own server: write what the reference's users have.

Prints one JSON line with everything written, for the test to read back after the upgrade.
"""

import json
import os
import sys
import tempfile

import mlflow
from mlflow import MlflowClient

mlflow.set_tracking_uri(sys.argv[1])
client = MlflowClient()
experiment_id = mlflow.create_experiment("legacy-2.6")
written = {"experiment_id": experiment_id, "runs": {}, "versions": {}}
blob = bytes(range(256)) * 64  # binary artifact: every byte value
workdir = tempfile.mkdtemp()
for index in range(3):
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"legacy-{index}") as run:
        params = {"lr": str(0.1 * (index + 1)), "depth": str(index + 2)}
        mlflow.log_params(params)
        history = [1.0 / (step + 1) + index for step in range(5)]
        for step, value in enumerate(history):
            mlflow.log_metric("loss", value, step=step)
        mlflow.log_metric("accuracy", 0.9 - index / 100)
        tags = {"team": "reference", "index": str(index)}
        mlflow.set_tags(tags)
        text = os.path.join(workdir, f"notes-{index}.txt")
        with open(text, "w") as handle:
            handle.write(f"run {index} notes\n")
        mlflow.log_artifact(text, artifact_path="docs")
        binary = os.path.join(workdir, "weights.bin")
        with open(binary, "wb") as handle:
            handle.write(blob + bytes([index]))
        mlflow.log_artifact(binary, artifact_path="model")
        written["runs"][run.info.run_id] = {
            "name": f"legacy-{index}",
            "params": params,
            "history": history,
            "accuracy": 0.9 - index / 100,
            "tags": tags,
            "artifacts": {
                f"docs/notes-{index}.txt": f"run {index} notes\n".encode().hex(),
                "model/weights.bin": (blob + bytes([index])).hex(),
            },
            "artifact_uri": run.info.artifact_uri,
        }
client.create_registered_model("legacy-model", tags={"owner": "reference"})
for (run_id, run), stage in zip(
    written["runs"].items(), ["Production", "Staging", "None"], strict=True
):
    version = client.create_model_version(
        "legacy-model", f"{run['artifact_uri']}/model", run_id=run_id
    )
    if stage != "None":
        client.transition_model_version_stage("legacy-model", version.version, stage)
    written["versions"][version.version] = {"run_id": run_id, "stage": stage}
client.transition_model_version_stage("legacy-model", "1", "Archived")
written["versions"]["1"]["stage"] = "Archived"
client.transition_model_version_stage("legacy-model", "3", "Production")
written["versions"]["3"]["stage"] = "Production"
print("WRITTEN " + json.dumps(written))
