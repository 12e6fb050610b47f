"""Small builders for the search tests: specs, the analytic objective, an ask/tell loop."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from tuner.search import SearchBackend
from tuner.spec import StudySpec

# Ax/BoTorch on pandas 3 warn about pandas 4 deprecations on every ask; they are theirs to fix, not ours.
THIRD_PARTY_WARNINGS = pytest.mark.filterwarnings(r"ignore::Warning:(ax|botorch|gpytorch|linear_operator|torch\.jit)\.")

# Two searched λ and two constant ones (``fixed``, and ``low == high``).
TASKS: dict[str, dict[str, Any]] = {
    "a": {},
    "b": {},
    "c": {"fixed": 0.3},
    "d": {"low": 0.7, "high": 0.7},
}


def make_spec(algorithm: str = "tpe", tasks: dict[str, dict[str, Any]] | None = None, metric: str = "val_accuracy",
              **search: Any) -> StudySpec:
    """A spec over ``tasks`` (name → λ spec); the workload is not checked, nothing is trained."""
    tasks = TASKS if tasks is None else tasks
    return StudySpec.model_validate({
        "name": "search-test",
        "workload": {"name": "synthetic"},
        "aux_tasks": [{"name": name, "loss": "mse", "lambda": lam} for name, lam in tasks.items()],
        "search": {"algorithm": algorithm, **search},
        "training": {"epochs": 5},
        "objective": {"metric": metric},
    })


def analytic(lambdas: dict[str, float]) -> float:
    """Best at λ_a = 1.5 (helpful), λ_b = 0.2 (harmful below helpful); other λ do not matter."""
    return -((lambdas["a"] - 1.5) ** 2) - (lambdas["b"] - 0.2) ** 2


def new_study(backend: SearchBackend, storage: str | None = None, study_name: str | None = None) -> optuna.Study:
    study = optuna.create_study(storage=storage, study_name=study_name, direction=backend.spec.objective.direction,
                                sampler=backend.sampler(), pruner=backend.pruner())
    backend.enqueue_controls(study)
    return study


def run_rounds(backend: SearchBackend, study: optuna.Study, n: int) -> list[dict[str, float]]:
    """``n`` ask/tell rounds on ``analytic`` (negated when the study minimises); the λ of each, in order."""
    sign = 1.0 if backend.spec.objective.direction == "maximize" else -1.0
    out = []
    for _ in range(n):
        trial = backend.ask(study)
        lambdas = backend.lambdas_of(trial)
        study.tell(trial, sign * analytic(lambdas))
        out.append(lambdas)
    return out


def in_bounds(spec: StudySpec, lambdas: dict[str, float]) -> bool:
    return all(t.lambda_.low <= lambdas[t.name] <= t.lambda_.high for t in spec.searched_tasks())
