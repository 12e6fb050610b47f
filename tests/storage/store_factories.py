"""Small factories shared by the store tests (importable by spawned worker processes too)."""

from __future__ import annotations

from typing import Any

import optuna

from storage import Store, StudyRecord

SPEC: dict[str, Any] = {
    "name": "demo",
    "workload": {"name": "synthetic", "params": {}},
    "aux_tasks": [{"name": "helpful", "loss": "ce"}],
    "search": {"algorithm": "random", "n_trials": 40},
}
CONTROLS = [{"lam": 0.0}, {"lam": 1.0}]


def suggest_lambda(trial: optuna.trial.Trial) -> dict[str, float]:
    return {"lam": trial.suggest_float("lam", 0.0, 2.0)}


def objective(params: dict[str, Any]) -> float:
    """Instant fake training: the best λ is 0.7."""
    return -((float(params["lam"]) - 0.7) ** 2)


def make_study(store: Store, n_trials: int = 5, enqueue: list[dict[str, float]] | None = None,
               name: str = "demo", direction: str = "maximize") -> StudyRecord:
    spec = {**SPEC, "name": name, "search": {**SPEC["search"], "n_trials": n_trials}}
    return store.create_or_resume_study(name, spec, [direction], n_trials, enqueue=enqueue or [])
