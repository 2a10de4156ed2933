"""The run machinery: Task base, trainer, distributed loop, recipes, MLflow tracking, checkpoints, registry."""
