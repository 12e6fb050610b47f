"""The limits of a spec (``tuner.spec.limits``): every hostile spec of ``tests/spec_catalog.py`` is refused by
``parse_spec`` (or the search backend built from it) and by ``auxtune validate`` with exit 2, naming the field;
the limits themselves are not past what the libraries take."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.spec_catalog import HOSTILE_SPECS, HostileSpec
from tuner.cli.common import EXIT_BAD_INPUT
from tuner.cli.main import app
from tuner.search import make_backend
from tuner.spec import SpecError, load_spec, parse_spec
from tuner.spec.limits import MAX_GRID_SIZE, MAX_SEED, MAX_TRIALS

ROOT = Path(__file__).resolve().parents[3]
BASE: dict[str, Any] = {
    "name": "limits",
    "workload": {"name": "synthetic", "params": {"n_train": 64, "n_val": 32, "n_test": 32}},
    "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
    "search": {"algorithm": "random", "n_trials": 4},
    "training": {"epochs": 2},
}
IDS = [c.id for c in HOSTILE_SPECS]


def refusal(data: dict[str, Any]) -> dict[str, str]:
    """The errors of a spec that must not run: from parsing it, or from building its search backend."""
    with pytest.raises(SpecError) as info:
        make_backend(parse_spec(data))
    return dict(info.value.errors)


def test_the_base_spec_runs() -> None:
    make_backend(parse_spec(BASE))


@pytest.mark.parametrize("case", HOSTILE_SPECS, ids=IDS)
def test_a_hostile_spec_is_refused_naming_the_field(case: HostileSpec) -> None:
    errors = refusal(case.apply(BASE))
    assert case.loc in errors, errors
    for words in case.words:
        assert words.lower() in errors[case.loc].lower(), errors


@pytest.mark.parametrize("case", HOSTILE_SPECS, ids=IDS)
def test_auxtune_validate_exits_2_naming_the_field(case: HostileSpec, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(case.apply(BASE)))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert f"{case.loc}:" in result.output.replace("\n", ""), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


def test_the_grid_bomb_is_refused_at_once_by_the_installed_script(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(yaml.safe_dump(HostileSpec("", {"search.algorithm": "grid", "search.grid_points": 10_000,
                                                    "search.n_trials": 100}, "").apply(BASE)))
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "tuner.cli", "validate", str(path)], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == EXIT_BAD_INPUT, r.stderr
    assert "search.grid_points" in r.stderr and "100000000 grid points" in r.stderr.replace("\n", "")
    assert time.monotonic() - started < 60  # 10⁸ points built would take minutes and ~2 GB


def test_a_grid_at_the_limit_is_accepted() -> None:
    data = HostileSpec("", {"search.algorithm": "grid", "search.grid_points": 100, "search.n_trials": 20000},
                       "").apply(BASE)
    backend = make_backend(parse_spec(data))
    assert backend.grid_size() == 100 * 100 == MAX_GRID_SIZE  # type: ignore[attr-defined]
    assert backend.max_trials() == MAX_GRID_SIZE + 1  # λ = 1 is off this grid of [0, 2]: one more trial
    assert len(backend.grid()["helpful"]) == 100  # type: ignore[attr-defined]


def test_seeds_at_the_limit_are_taken_by_numpy_with_every_offset_the_workers_add() -> None:
    spec = parse_spec(HostileSpec("", {"search.seed": MAX_SEED, "training.seed": MAX_SEED}, "").apply(BASE))
    # optuna's samplers seed a numpy RandomState with seed + the worker's stream; trials add their number
    np.random.RandomState(spec.search.seed + 1000)
    np.random.RandomState(spec.training.seed + MAX_TRIALS + 1_000_000 + 1000)


def test_controls_off_allows_a_single_trial() -> None:
    make_backend(parse_spec(HostileSpec("", {"search.n_trials": 1, "search.controls": False}, "").apply(BASE)))


@pytest.mark.parametrize("text", ["big: 0x" + "f" * 5000, "big: " + "1" * 5000, "[" * 100_000 + "]" * 100_000])
def test_a_spec_file_with_a_huge_number_or_deep_nesting_is_bad_input(text: str, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(f"name: x\nworkload: {{name: synthetic}}\n{text}\n" if text.startswith("big") else text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.errors[0][0] in ("", "big"), info.value.errors
    assert "sys.set_int_max_str_digits" not in str(info.value)
