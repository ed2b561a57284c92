"""AWS workflows (ECR, Fargate, SageMaker endpoints and tuning) and SageMaker local mode."""
