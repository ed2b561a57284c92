"""`mlstack monitor`: an endpoint's captured traffic against the model's training data.

captures (read Data Capture files from S3 or MinIO), baseline (the model's training data,
found from its URI), drift (scipy's distances and tests), analysis (windows, schema,
quality), report (HTML and JSON), tracking (the MLflow run), command (the click command).
"""
