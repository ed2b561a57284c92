"""The local stack: SageMaker-style jobs, the loop's commands, backup and restore, .env."""
