"""The synthetic workload's claimed ground truth holds: `helpful` helps the main task, `harmful` hurts it.

Each claim is checked on the mean over four training seeds and on at least three of the four seeds, so one
lucky or unlucky seed cannot make it pass or fail. Measured: baseline ≈ 0.585, helpful ≈ 0.617,
harmful ≈ 0.526 test accuracy.
"""

from __future__ import annotations

from statistics import mean

import pytest

from tuner.engine.loop import run_trial
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.spec import parse_spec

SEEDS = (0, 1, 2, 3)
BASELINE = {"helpful": 0.0, "harmful": 0.0, "neutral": 0.0}


@pytest.fixture(scope="module")
def prep() -> PreparedStudy:
    spec = parse_spec({
        "name": "ground-truth",
        "workload": {"name": "synthetic"},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"},
                      {"name": "neutral", "loss": "bce"}],
        "training": {"epochs": 40, "batch_size": 32, "lr": 0.003},
    })
    return prepare(spec)


@pytest.fixture(scope="module")
def baseline(prep: PreparedStudy) -> list[float]:
    return accuracies_over_seeds(prep, BASELINE)


def accuracies_over_seeds(prep: PreparedStudy, lambdas: dict[str, float]) -> list[float]:
    out = []
    for seed in SEEDS:
        result = run_trial(prep, lambdas, seed=seed)
        assert result.status == "complete", result.reason
        assert result.test_accuracy is not None
        out.append(result.test_accuracy)
    return out


@pytest.mark.slow
def test_helpful_task_helps(prep: PreparedStudy, baseline: list[float]) -> None:
    helped = accuracies_over_seeds(prep, {**BASELINE, "helpful": 1.0})
    assert mean(helped) > mean(baseline), (helped, baseline)
    assert sum(h > b for h, b in zip(helped, baseline, strict=True)) >= 3, (helped, baseline)


@pytest.mark.slow
def test_harmful_task_hurts(prep: PreparedStudy, baseline: list[float]) -> None:
    hurt = accuracies_over_seeds(prep, {**BASELINE, "harmful": 2.0})
    assert mean(hurt) < mean(baseline), (hurt, baseline)
    assert sum(h < b for h, b in zip(hurt, baseline, strict=True)) >= 3, (hurt, baseline)
