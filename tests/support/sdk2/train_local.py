"""A user's SageMaker Python SDK v2 program: their training script in SDK local mode with the
mlstack training image, as the README shows it. The tests run it in the v2 venv
(make venv-sdk2) with the job's particulars as arguments:

    train_local.py IMAGE SOURCE_DIR ENTRY_POINT DATA_DIR WORK_DIR HYPERPARAMETERS_JSON

and read {"job_name": ..., "model_data": ...} from its last line.
"""

import json
import sys

from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession

image, source_dir, entry_point, data_dir, work_dir, hyperparameters = sys.argv[1:]

session = LocalSession()
session.config = {"local": {"local_code": True, "container_root": work_dir}}
estimator = Estimator(
    image_uri=image,
    source_dir=source_dir,
    entry_point=entry_point,
    role="arn:aws:iam::111111111111:role/any-role-in-local-mode",
    instance_count=1,
    instance_type="local",
    output_path=f"file://{work_dir}/output",
    hyperparameters=json.loads(hyperparameters),
    sagemaker_session=session,
)
estimator.fit({"train": f"file://{data_dir}/train", "test": f"file://{data_dir}/test"})
job = {"job_name": estimator.latest_training_job.name, "model_data": estimator.model_data}
print(json.dumps(job))
