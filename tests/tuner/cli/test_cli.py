"""The ``auxtune`` CLI as a user runs it: a real subprocess of the installed console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]


def auxtune(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuner.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def small_synthetic(tmp_path: Path, **training) -> Path:
    spec = yaml.safe_load((ROOT / "examples/synthetic.yaml").read_text())
    spec["training"].update({"epochs": 3, **training})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_validate_passes_example_and_prints_summary() -> None:
    r = auxtune("validate", "examples/synthetic.yaml")
    assert r.returncode == 0, r.stderr
    assert "sanity gate passed" in r.stdout
    assert "helpful" in r.stdout


def test_validate_reports_failed_gate_with_reason(tmp_path: Path) -> None:
    r = auxtune("validate", str(small_synthetic(tmp_path, lr=1e6, optimizer="sgd")))
    assert r.returncode == 1
    assert "sanity gate failed" in r.stderr
    assert "non-finite loss" in r.stderr


def test_validate_names_the_bad_field(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "examples/synthetic.yaml").read_text())
    spec["training"]["epochs"] = 0
    spec["aux_tasks"][0]["name"] = "nope"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    r = auxtune("validate", str(path))
    assert r.returncode == 2
    assert "training.epochs" in r.stderr
    assert "Traceback" not in r.stderr


def test_trial_json_has_per_epoch_per_task_figures(tmp_path: Path) -> None:
    r = auxtune("trial", str(small_synthetic(tmp_path)), "--lambda", "helpful=1.7", "--lambda", "harmful=0.5",
                "--seed", "2", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["status"] == "complete"
    assert out["lambdas"] == {"helpful": 1.7, "neutral": 1.0, "harmful": 0.5}
    assert out["seed"] == 2
    assert len(out["epochs"]) == 3
    assert set(out["epochs"][0]["val_loss"]) == {"main", "helpful", "neutral", "harmful", "total"}
    assert 0.0 <= out["test_accuracy"] <= 1.0


def test_trial_table_output_and_bad_lambda(tmp_path: Path) -> None:
    spec = small_synthetic(tmp_path)
    r = auxtune("trial", str(spec), "--lambda", "helpful=0.5")
    assert r.returncode == 0, r.stderr
    assert "val_accuracy" in r.stdout and "test accuracy" in r.stdout
    for bad, field in [("helpful=9", "lambda.helpful"), ("ghost=1", "lambda.ghost"), ("helpful", "--lambda")]:
        r = auxtune("trial", str(spec), "--lambda", bad)
        assert r.returncode == 2, bad
        assert field in r.stderr


def test_workloads_lists_builtins_with_tasks() -> None:
    r = auxtune("workloads", "--json")
    assert r.returncode == 0, r.stderr
    rows = {w["name"]: w for w in json.loads(r.stdout)}
    assert {"digits", "synthetic", "table"} <= set(rows)
    assert {"helpful", "neutral", "harmful"} <= set(rows["synthetic"]["tasks"])
    assert rows["synthetic"]["tasks"]["harmful"]["losses"] == ["mse"]


def test_read_only_commands_refuse_a_missing_store_instead_of_creating_one(tmp_path: Path) -> None:
    for args in (["status", "s"], ["best", "s"], ["trials", "s"], ["studies"], ["report", "s"],
                 ["affinity", "s"]):
        r = auxtune(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "no store at ./auxtune.db: pass --db or run a study first" in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    elsewhere = tmp_path / "nested" / "other.db"
    r = auxtune("studies", "--db", f"sqlite:///{elsewhere}", cwd=tmp_path)
    assert r.returncode == 2 and "no store at ./nested/other.db" in r.stderr, r.stderr
    assert not any(tmp_path.iterdir())  # nothing created: no empty auxtune.db, no folder


def test_the_cli_lease_default_is_the_store_s() -> None:
    """options.py writes the 60 s as a number (importing the store would slow every command's start): it must stay
    the store's one default."""
    from storage import DEFAULT_LEASE_TIMEOUT_S
    from tuner.cli.options import LEASE_TIMEOUT_S

    assert LEASE_TIMEOUT_S == DEFAULT_LEASE_TIMEOUT_S
