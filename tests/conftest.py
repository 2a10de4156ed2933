"""Shared fixtures: a real MLflow store in a temp folder, quiet TF, small real data."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """Point MLflow at a fresh SQLite store under ``tmp_path``; returns the URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in a fresh working folder (exports, checkpoints and mlflow.db land there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
