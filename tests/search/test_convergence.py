"""TPE, GP and Ax find the analytic optimum's shape: the harmful λ_b ends below the helpful λ_a."""

from __future__ import annotations

import pytest

from tests.search.factories import THIRD_PARTY_WARNINGS, make_spec, new_study, run_rounds
from tuner.search import make_backend

pytestmark = [THIRD_PARTY_WARNINGS, pytest.mark.slow]


@pytest.mark.parametrize("algorithm", ["tpe", "gp", "ax"])
def test_best_point_has_harmful_below_helpful(algorithm: str) -> None:
    backend = make_backend(make_spec(algorithm, tasks={"a": {}, "b": {}}, n_trials=22, seed=0))
    study = new_study(backend)
    run_rounds(backend, study, backend.max_trials())  # 2 controls + 20 searched
    best = backend.lambdas_of(study.best_trial)
    assert best["b"] < best["a"]
    assert study.best_value > -0.25  # well past both controls (-2.29 and -0.89)
