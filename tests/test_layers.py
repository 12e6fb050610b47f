"""The floors of the code hold (README, Layout): the import contracts, no cycle inside tuner/, small modules,
and torch only where the engine imports it.

The contracts themselves are ``[tool.importlinter]`` in pyproject.toml; these tests run them with the suite and
add what import-linter cannot say: how many modules sit directly in tuner/, how long a module may grow, and that
outside ``tuner/engine`` nothing imports torch when its module is imported (import-linter sees lazy imports too,
so its "no torch below the engine" contract lists the workloads' and the Ax backend's lazy imports as allowed).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp

import tuner

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner", "api", "storage")
ENGINE = ROOT / "tuner" / "engine"
MAX_TOP_LEVEL_MODULES = 8
MAX_LINES = 400


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


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"  # the console script of this venv (not resolved: a link)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([str(lint)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    broken = done.returncode != 0
    assert not broken, done.stdout + done.stderr


def test_at_most_eight_modules_directly_in_tuner() -> None:
    modules = sorted(p.name for p in (ROOT / "tuner").glob("*.py"))
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, f"{len(modules)} modules directly in tuner/: {modules}"


def test_no_module_over_400_lines() -> None:
    lengths = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
               for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    over = {path: n for path, n in sorted(lengths.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: " + ", ".join(f"{p} ({n})" for p, n in over.items())


def _in_tuner(module: str) -> bool:
    return module == "tuner" or module.startswith("tuner.")


def test_no_import_cycle_between_modules_of_tuner() -> None:
    """No module of tuner/ imports one that imports it back, directly or not; through api or storage counts, and
    so do imports inside functions (a deferred import that closes a loop is still a loop)."""
    assert Path(tuner.__file__).parent == ROOT / "tuner", "grimp would read another checkout's tuner/"
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True)
    loops = [f"{a} -> {' -> '.join(graph.find_shortest_chain(importer=b, imported=a) or (b, a))}"
             for a in sorted(filter(_in_tuner, graph.modules))
             for b in sorted(filter(_in_tuner, graph.find_modules_directly_imported_by(a)))
             if graph.chain_exists(importer=b, imported=a)]
    assert not loops, f"{len(loops)} imports inside tuner/ that close a cycle:\n" + "\n".join(loops)
