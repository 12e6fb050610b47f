"""The floors of the code, as far as a contract cannot say them (the rest: ``lint-imports``, pyproject.toml).

import-linter sees every import, lazy ones too, so the "no torch below the engine" contract lists the workloads'
and the Ax backend's imports inside functions as allowed. What it cannot say, checked here: outside
``tuner/engine`` nothing imports torch when its module is imported (so the API, the spec checks and the store
run without torch), and a lazy import stays lazy.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner", "api", "storage")
ENGINE = ROOT / "tuner" / "engine"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_at_import(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of ``body`` that run when the module is imported: into ``if``/``try``/``with``/loops and
    class bodies, not into functions nor an ``if TYPE_CHECKING:`` block (its ``else`` runs)."""
    for node in body:
        yield node
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _run_at_import(node.orelse)
            continue
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            for child in getattr(node, name, []):
                if isinstance(child, ast.stmt):
                    yield from _run_at_import([child])
                else:  # an except handler or a match case: a node holding statements
                    yield from _run_at_import(child.body)


def _imports_torch(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == "torch" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] == "torch"
    return False


def torch_at_module_level(source: str) -> list[int]:
    """The lines of ``source`` that import torch when the module is imported."""
    return [node.lineno for node in _run_at_import(ast.parse(source).body) if _imports_torch(node)]


def test_the_check_sees_what_runs_at_import() -> None:
    source = "\n".join([
        "from typing import TYPE_CHECKING",
        "if TYPE_CHECKING:",
        "    import torch",  # 3: types only
        "else:",
        "    from torch import nn",  # 5: runs
        "try:",
        "    import torch.nn.functional as F",  # 7: runs
        "except ImportError:",
        "    import torch as t",  # 9: runs when the first one fails
        "def build():",
        "    import torch",  # 11: lazy
        "class Model:",
        "    import torch",  # 13: a class body runs at import
        "import torchvision",  # 14: another package
    ])
    assert torch_at_module_level(source) == [5, 7, 9, 13]


def test_only_the_engine_imports_torch_at_module_level() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ENGINE):
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in torch_at_module_level(path.read_text())]
    assert not offenders, (f"torch imported at module level outside tuner/engine: {offenders}; import it inside "
                           "the function that needs it, or under `if TYPE_CHECKING:` for types")
