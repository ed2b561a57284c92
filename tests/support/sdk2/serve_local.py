"""A user's SageMaker Python SDK v2 program: a model served locally by the mlstack inference
image, asked one request, as the README shows it. The tests run it in the v2 venv:

    serve_local.py IMAGE MODEL_URL WORK_DIR PORT PAYLOAD

and read the endpoint's answer (JSON) from its last line.
"""

import sys

from sagemaker.local import LocalSession
from sagemaker.model import Model

image, model_url, work_dir, port, payload = sys.argv[1:]

session = LocalSession()
session.config = {
    "local": {"local_code": True, "container_root": work_dir, "serving_port": int(port)}
}
model = Model(
    image_uri=image,
    model_data=model_url,
    role="arn:aws:iam::111111111111:role/any-role-in-local-mode",
    sagemaker_session=session,
)
model.deploy(initial_instance_count=1, instance_type="local")
try:
    answer = session.sagemaker_runtime_client.invoke_endpoint(
        EndpointName=model.endpoint_name, ContentType="application/json", Body=payload
    )
    body = answer["Body"].read().decode()
finally:
    session.delete_endpoint(model.endpoint_name)
print(body)
