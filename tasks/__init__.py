"""Tasks: one problem each (model + pipeline + loss + metrics + evaluation),
the trainer, MLflow tracking, recipes and the ``convforge`` CLI."""
