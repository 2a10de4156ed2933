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


# --- albumentations is a benchmark/dev dependency only (issue #20, item 7) ---

RUNTIME_PACKAGES = ("pipelines", "models", "tasks", "serving")
BENCH_ONLY = ("albumentations", "albucore", "tensorflow_addons")


def _project():
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    import re

    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def test_albumentations_is_not_a_runtime_dependency():
    project = _project()
    runtime = {_name(r) for r in project["dependencies"]}
    assert "albumentations" not in runtime
    assert "tensorflow-addons" not in runtime
    # cv2 is imported at runtime (pipelines/scenes.py, ...): it must be declared, not arrive through albumentations
    assert "opencv-python-headless" in runtime
    extras = project["optional-dependencies"]
    assert "albumentations" in {_name(r) for r in extras["dev"]}  # make test / make bench install .[cpu,dev]
    assert "albumentations" in {_name(r) for r in extras["bench"]}


def _imported_modules(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_runtime_module_imports_albumentations_or_addons():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in RUNTIME_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imported_modules(path) & set(BENCH_ONLY))
    ]
    assert offenders == []
    # the scan itself sees lazy imports inside functions: the benchmark's baseline is found
    assert "albumentations" in _imported_modules(ROOT / "benchmarks" / "augment.py")


def test_runtime_packages_import_without_albumentations():
    """Every runtime module imports with albumentations (and its helpers) made unimportable."""
    import subprocess
    import sys

    code = f"""
import importlib, pkgutil, sys
for name in {BENCH_ONLY!r}:
    sys.modules[name] = None  # 'import name' now raises ImportError
failed = []
for package in {RUNTIME_PACKAGES!r}:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as error:
            failed.append(f"{{info.name}}: {{error}}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
