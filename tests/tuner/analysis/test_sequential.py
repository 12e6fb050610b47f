"""``confirm.seeds: auto``'s looks keep the error rate: simulated under the null, and they stop on a clear effect."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from tuner.analysis.sequential import DECIDED, MAX_SEEDS, decide, look_alphas, look_sizes, obrien_fleming_spent
from tuner.analysis.stats import ALPHA, NO_DIFFERENCE, Comparison, compare_paired


def test_the_looks_spend_alpha_by_obrien_fleming() -> None:
    sizes = look_sizes(4, 16)
    assert sizes == [4, 8, 12, 16] and look_sizes(4, 10) == [4, 8, 10] and look_sizes(10, 10) == [10]
    alphas = look_alphas(sizes)
    assert sum(alphas) == pytest.approx(ALPHA) and alphas == sorted(alphas)  # little early, most at the end
    assert obrien_fleming_spent(0.5) == pytest.approx(0.005575, abs=1e-5)  # 2 − 2Φ(1.96 / √0.5)
    assert look_alphas([10]) == [ALPHA]


def _simulate(effect: float, draws: int, rng: np.random.Generator, correction: float = 0.0) -> tuple[float, float]:
    """Share of simulated confirmations with a verdict, and their mean seeds, for paired differences
    N(effect, 1) observed in rounds of 4 up to 16."""
    sizes = look_sizes(4, 16)
    rejected, seeds = 0, 0
    for _ in range(draws):
        d = rng.normal(effect, 1.0, 16)
        arm = dict(enumerate(d))
        ref = dict.fromkeys(range(16), 0.0)

        def at(n: int, a: float, arm: dict = arm, ref: dict = ref) -> list[Comparison]:
            return [compare_paired({s: arm[s] for s in range(n)}, {s: ref[s] for s in range(n)}, "maximize", a,
                                   1 - a, correction)]

        state, (c,) = decide(sizes, 16, at)
        rejected += c.verdict != NO_DIFFERENCE
        seeds += state.seeds
        assert state.stopped and state.reason in (DECIDED, MAX_SEEDS)
    return rejected / draws, seeds / draws


def test_the_sequential_procedure_keeps_its_error_rate_under_the_null() -> None:
    """4 000 simulated null confirmations (paired differences N(0, 1), looks at 4, 8, 12, 16 seeds), each look's
    paired t-test at its spent α, vectorised; a look at plain α each time would reject ~13 % (checked too)."""
    rng = np.random.default_rng(0)
    sizes = look_sizes(4, 16)
    d = rng.normal(0.0, 1.0, (4000, 16))
    p = np.stack([2 * scipy_stats.t.sf(np.abs(d[:, :n].mean(1) / (d[:, :n].std(1, ddof=1) / np.sqrt(n))), n - 1)
                  for n in sizes], axis=1)
    spent = (p < np.array(look_alphas(sizes))).any(axis=1).mean()
    naive = (p < ALPHA).any(axis=1).mean()
    assert spent <= ALPHA + 0.007 and naive > 0.09, (spent, naive)  # binomial sd at 5 %: 0.35 %


def test_the_sequential_procedure_stops_early_on_a_clear_effect() -> None:
    rate, seeds = _simulate(1.5, 40, np.random.default_rng(1))  # through decide() and compare_paired
    assert rate > 0.95 and seeds < 12, (rate, seeds)
    rate, seeds = _simulate(0.0, 40, np.random.default_rng(2))
    assert rate <= 0.1 and seeds > 14, (rate, seeds)
