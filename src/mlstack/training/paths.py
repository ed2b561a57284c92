"""The /opt/ml directory contract of SageMaker training containers.

AWS, "How Amazon SageMaker AI Provides Training Information" and "... Training Output":
  /opt/ml/input/config/hyperparameters.json   map of hyperparameter name -> string
  /opt/ml/input/config/inputdataconfig.json   channel name -> {TrainingInputMode, ...}
  /opt/ml/input/data/<channel>/               the channel's files (File mode)
  /opt/ml/model/                              tarred into model.tar.gz after success
  /opt/ml/output/data/                        tarred into output.tar.gz
  /opt/ml/output/failure                      failure reason; first 1024 characters shown
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FAILURE_REASON_LIMIT = 1024  # characters SageMaker shows in DescribeTrainingJob.FailureReason


@dataclass(frozen=True)
class OptML:
    """Paths under the container's /opt/ml (or any other root, for tests and local runs)."""

    root: Path = Path("/opt/ml")

    @property
    def hyperparameters_file(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.root / "input" / "config" / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        """The directory holding one input channel's files."""
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    def write_failure(self, reason: str) -> None:
        """Record why the job failed, where SageMaker looks for it."""
        self.failure_file.parent.mkdir(parents=True, exist_ok=True)
        self.failure_file.write_text(reason[:FAILURE_REASON_LIMIT] + "\n", encoding="utf-8")
