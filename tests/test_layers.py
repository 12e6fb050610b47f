"""The floors of the code hold (README, Layout): the import contracts, no cycle inside tuner/, small modules.

The contracts themselves are ``[tool.importlinter]`` in pyproject.toml; these tests run them with the suite and
add what import-linter cannot say: how many modules sit directly in tuner/, and how long a module may grow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

import tuner

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner", "api", "storage")
MAX_TOP_LEVEL_MODULES = 8
MAX_LINES = 400


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
