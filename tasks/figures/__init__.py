"""Figures logged to MLflow and drawn by the CLI: training curves, confusion matrices, detections."""
