"""The repository's mlflow/ folder is an MLflow Project, never a shadow of the library."""

from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]


def test_import_mlflow_is_the_installed_library():
    path = Path(mlflow.__file__).resolve()
    assert "site-packages" in path.parts
    assert ROOT / "mlflow" not in path.parents
    assert hasattr(mlflow, "start_run") and hasattr(mlflow, "keras")


def test_mlflow_folder_is_a_project_not_a_package():
    assert not (ROOT / "mlflow" / "__init__.py").exists()
    text = (ROOT / "mlflow" / "MLproject").read_text()
    assert "train:" in text and "recipe" in text
