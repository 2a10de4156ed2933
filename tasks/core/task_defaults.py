"""A task's recipe defaults, read from its module's source without importing it (no TensorFlow).

Each module of ``tasks/problems`` registers its Task with ``@register_task("name")``
and declares ``defaults = {...}`` in the class body. Reading a recipe only needs
those defaults, so ``static_defaults`` finds them with ``ast`` and evaluates
them: literals, ``dict(...)``, and names bound to literals at module level in
that module or imported from another of this project's modules (``tasks``,
``pipelines``, ``models``, ``serving``). A class without
its own ``defaults`` inherits its base class's. Anything else gives None and
the caller imports the task instead; a test checks both ways agree.

Example:
    >>> static_defaults("classification")
    {'data': {'test_fraction': 0.1}}
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
PROBLEMS_DIR = ROOT / "tasks" / "problems"
FIRST_PARTY = ("tasks", "pipelines", "models", "serving")


class _NotStatic(Exception):
    pass


@functools.cache
def _module(name: str) -> ast.Module | None:
    """The parsed source of the first-party module ``name`` (dotted), or None."""
    path = ROOT / f"{name.replace('.', '/')}.py"
    if not path.is_file():
        path = ROOT / name.replace(".", "/") / "__init__.py"
    try:
        return ast.parse(path.read_text(), str(path)) if path.is_file() else None
    except (SyntaxError, ValueError, OSError, UnicodeDecodeError):  # importing it names the real problem
        return None


@functools.cache
def registered_classes() -> dict[str, tuple[str, str]]:
    """``{task name: (module, class name)}`` for every ``@register_task("...")`` class in ``tasks/problems``."""
    out: dict[str, tuple[str, str]] = {}
    for path in sorted(PROBLEMS_DIR.glob("*.py")):
        tree = _module(f"tasks.problems.{path.stem}")
        for node in tree.body if tree else []:
            if not isinstance(node, ast.ClassDef):
                continue
            for deco in node.decorator_list:
                if (isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register_task" and deco.args
                        and isinstance(deco.args[0], ast.Constant) and isinstance(deco.args[0].value, str)):
                    out[deco.args[0].value] = (f"tasks.problems.{path.stem}", node.name)
    return out


def static_defaults(task_name: str) -> dict | None:
    """The ``defaults`` of the Task registered as ``task_name``, read from source; None when it cannot be."""
    where = registered_classes().get(task_name)
    if where is None:
        return None
    try:
        return _class_defaults(*where)
    except (_NotStatic, RecursionError):
        return None


def _class_defaults(module: str, cls_name: str) -> dict:
    tree = _module(module)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name), None) if tree else None
    if cls is None:
        raise _NotStatic(cls_name)
    for stmt in cls.body:
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None and "defaults" in _bound(stmt):
            return _evaluate(stmt.value, module)
    if len(cls.bases) != 1 or not isinstance(cls.bases[0], ast.Name):
        raise _NotStatic(cls_name)
    base = cls.bases[0].id
    if base == "Task":
        return {}
    return _class_defaults(*_origin(base, module))


def _origin(name: str, module: str) -> tuple[str, str]:
    """(module, name) where ``name`` as seen in ``module`` is bound (following ``from <first-party> import``)."""
    for node in (_module(module) or ast.Module(body=[])).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.ClassDef)) and name in _bound(node):
            return module, name
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in FIRST_PARTY:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return node.module, alias.name
    raise _NotStatic(name)


def _bound(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.ClassDef):
        return {node.name}
    targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
    return {t.id for t in targets if isinstance(t, ast.Name)}


def _evaluate(node: ast.expr, module: str) -> Any:
    if isinstance(node, ast.Name):
        where, name = _origin(node.id, module)
        for stmt in (_module(where) or ast.Module(body=[])).body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None and name in _bound(stmt):
                return _evaluate(stmt.value, where)
        raise _NotStatic(node.id)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _NotStatic("**")
        return {_evaluate(k, module): _evaluate(v, module) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.List):
        return [_evaluate(e, module) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_evaluate(e, module) for e in node.elts)
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "dict" and len(node.args) <= 1:
        out = dict(_evaluate(node.args[0], module)) if node.args else {}
        for kw in node.keywords:
            if kw.arg is None:
                raise _NotStatic("**")
            out[kw.arg] = _evaluate(kw.value, module)
        return out
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _NotStatic(ast.dump(node)[:40]) from None
