"""From laptop to AWS: push images to ECR, SageMaker local mode, Fargate, endpoints, tuning.

Each module runs as `python -m aws.<module>` with scripts/ on PYTHONPATH (the Makefile's
targets do that). Configuration comes from environment variables only (README table).
"""
