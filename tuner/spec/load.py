"""Parse and load a study spec: its structure *and* whether it can run.

``parse_spec``/``load_spec`` check the structure (``StudySpec``), the spec against the workload registry (the
workload exists, every aux task is one the workload offers, every loss fits its task's targets) and its budgets
(``tuner.spec.checks``), so a spec that loads is a spec a worker can run. Errors name the field and what is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tuner.spec import limits
from tuner.spec.checks import check_runnable
from tuner.spec.errors import SpecError
from tuner.spec.study import StudySpec, validate_structure
from tuner.workloads import get_workload


def parse_spec(data: dict[str, Any], base_dir: Path | None = None) -> StudySpec:
    """Validate a spec given as a dict; relative data paths resolve against ``base_dir``.

    Raises:
        SpecError: with one ``(field, message)`` per problem.
    """
    if not isinstance(data, dict):
        raise SpecError([("", "a study spec must be a mapping (YAML/JSON object)")])
    unstorable = [(".".join(map(str, loc)), msg) for loc, msg in limits.unstorable_values(data, [])]
    if unstorable:  # before pydantic, whose messages would print a number past 4 300 digits
        raise SpecError(unstorable)
    if base_dir is not None:
        data = _resolve_paths(data, base_dir)
    spec = validate_structure(data)
    check_runnable(spec)
    return spec


def load_spec(path: str | Path) -> StudySpec:
    """Read a YAML or JSON spec file; paths inside it are relative to the file's folder."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError([("", f"cannot read spec file {p}: {exc.strerror}")]) from None
    kind = "JSON" if p.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:  # ValueError: also a number past 4 300 digits
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split("; use sys.")[0]
        raise SpecError([("", f"{p} is not valid {kind}: {why}")]) from None
    return parse_spec(data, base_dir=p.resolve().parent)


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    workload = data.get("workload")
    if not isinstance(workload, dict) or not isinstance(workload.get("params"), dict):
        return data
    try:
        cls = get_workload(str(workload.get("name")))
    except KeyError:
        return data
    params = dict(workload["params"])
    for key in cls.path_params:
        value = params.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            params[key] = str((base_dir / value).resolve())
    return {**data, "workload": {**workload, "params": params}}
