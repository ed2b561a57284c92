"""Fixtures of the training suites: the diabetes data and /opt/ml trees."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from mlstack.training.paths import OptML
from support.data import job_frames, write_channels
from support.stack import TrackingServer

from .helpers import FEATURES, TARGET


@pytest.fixture(scope="session")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The diabetes data as `mlstack data` splits it: (train, test)."""
    return job_frames(tmp_path_factory.mktemp("opt_ml"))


@pytest.fixture(scope="session")
def channels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The diabetes channels (and hyperparameters.json) exactly as `make data` writes them."""
    return write_channels(tmp_path_factory.mktemp("diabetes"))


@pytest.fixture
def client(tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """MLflow's client on the host, pointed at the session's tracking server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.uri_from_host)
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
    return MlflowClient(tracking_server.uri_from_host)


@pytest.fixture
def make_opt_ml(
    tmp_path: Path, diabetes: tuple[pd.DataFrame, pd.DataFrame]
) -> Callable[..., OptML]:
    """Build a /opt/ml tree the way SageMaker lays it out, under tmp_path."""

    def make(
        hyperparameters: Mapping[str, object] | None = None,
        train: pd.DataFrame | str | None = "diabetes",
        test: pd.DataFrame | str | None = "diabetes",
    ) -> OptML:
        opt_ml = OptML(tmp_path / "opt_ml")
        config = opt_ml.hyperparameters_file.parent
        config.mkdir(parents=True)
        defaults = {"n-estimators": "10", "features": FEATURES, "target": TARGET}
        values = defaults if hyperparameters is None else hyperparameters
        opt_ml.hyperparameters_file.write_text(json.dumps(values))
        channels = {"train": train, "test": test}
        (config / "inputdataconfig.json").write_text(
            json.dumps(
                {
                    name: {"TrainingInputMode": "File"}
                    for name, v in channels.items()
                    if v is not None
                }
            )
        )
        (config / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})
        )
        for (name, content), default in zip(channels.items(), diabetes, strict=True):
            if content is None:
                continue
            directory = opt_ml.channel(name)
            directory.mkdir(parents=True)
            if isinstance(content, str):
                if content == "diabetes":
                    default.to_csv(directory / f"{name}.csv", index=False)
                else:
                    (directory / f"{name}.csv").write_text(content)
            else:
                content.to_csv(directory / f"{name}.csv", index=False)
        opt_ml.model_dir.mkdir()
        (opt_ml.root / "output").mkdir()
        return opt_ml

    return make
