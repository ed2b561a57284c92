"""A user's SageMaker Python SDK v3 program: their training script through ModelTrainer in
local-container mode with the mlstack training image, as the README shows it. The tests run
it with the host venv's SDK v3 and the job's particulars as arguments:

    train_local.py IMAGE SOURCE_DIR ENTRY_POINT DATA_DIR WORK_DIR HYPERPARAMETERS_JSON

WORK_DIR is the job's local_container_root (v3 would use the current directory).
"""

import json
import sys
from pathlib import Path

from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, SourceCode
from sagemaker.train.model_trainer import Mode

image, source_dir, entry_point, data_dir, work_dir, hyperparameters = sys.argv[1:]
has_requirements = (Path(source_dir) / "requirements.txt").is_file()

trainer = ModelTrainer(
    training_mode=Mode.LOCAL_CONTAINER,
    training_image=image,
    source_code=SourceCode(
        source_dir=source_dir,
        entry_script=entry_point,
        requirements="requirements.txt" if has_requirements else None,
    ),
    compute=Compute(instance_type="local_cpu", instance_count=1),
    hyperparameters=json.loads(hyperparameters),
    local_container_root=work_dir,
)
trainer.train(
    input_data_config=[
        InputData(channel_name="train", data_source=f"{data_dir}/train"),
        InputData(channel_name="test", data_source=f"{data_dir}/test"),
    ]
)
