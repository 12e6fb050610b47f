"""How many seeds a confirmation needs: looks after every round of seeds, with an alpha-spending rule.

``confirm.seeds: auto`` trains the arms in rounds of ``round_seeds`` seeds and looks at the data after each
round; it stops at the first look whose confidence interval excludes 0, or at ``max_seeds``. Looking again and
again at a 5 % test would make a false "better" ever more likely, so look k tests at its own level α_k from
the O'Brien–Fleming-type spending function of Lan & DeMets (1983),

    α(t) = 2 − 2 Φ(z_{1−α/2} / √t),   t = seeds so far / max_seeds,   α_k = α(t_k) − α(t_{k−1}),

whose levels sum to α: by the union bound the chance of *any* false rejection over all looks is at most α,
whatever the correlation between looks (``tests/tuner/analysis/test_sequential.py`` checks it by
simulation). Early looks spend very little α (a round of 4 out of 16 seeds tests at 0.0001), so a clear
effect stops early and a small one is still tested near α at the end. A fixed number of seeds is one look
at α.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from tuner.analysis.stats import ALPHA, NO_DIFFERENCE, Comparison

#: Why a sequential confirmation stopped (or has not).
DECIDED, MAX_SEEDS, RUNNING = "decided", "max_seeds", "running"


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _normal_quantile(p: float) -> float:
    lo, hi = -40.0, 40.0  # bisection: no scipy import for a handful of quantiles
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _normal_cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def obrien_fleming_spent(t: float, alpha: float = ALPHA) -> float:
    """α spent up to information fraction ``t`` (0 < t ≤ 1) by the O'Brien–Fleming-type spending function."""
    if t <= 0:
        return 0.0
    return min(alpha, 2.0 - 2.0 * _normal_cdf(_normal_quantile(1 - alpha / 2) / math.sqrt(min(t, 1.0))))


def look_sizes(round_seeds: int, max_seeds: int) -> list[int]:
    """Seeds per arm at each look: one round more each time, the last at ``max_seeds``."""
    sizes = list(range(round_seeds, max_seeds, round_seeds))
    return [*sizes, max_seeds]


def look_alphas(sizes: list[int], alpha: float = ALPHA) -> list[float]:
    """The level of each look's two-sided test; they sum to ``alpha``. One look: ``alpha`` itself."""
    total = sizes[-1]
    spent = [obrien_fleming_spent(n / total, alpha) for n in sizes]
    spent[-1] = alpha
    return [b - a for a, b in zip([0.0, *spent[:-1]], spent, strict=True)]


@dataclass(frozen=True)
class SequentialState:
    """Where a confirmation stands: the looks done, the level of the last, and whether and why it stopped."""

    looks: list[int]
    alphas: list[float]
    seeds: int
    alpha: float
    stopped: bool
    reason: str
    next_seeds: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(sizes: list[int], complete_seeds: int, compare_at: Callable[[int, float], list[Comparison]],
           alpha: float = ALPHA) -> tuple[SequentialState, list[Comparison]]:
    """Run the planned looks that the finished seeds allow and stop at the first that decides every comparison.

    Args:
        sizes: seeds per arm at each planned look (:func:`look_sizes`; one size for a fixed number of seeds).
        complete_seeds: how many seeds (in order) have every arm's run finished.
        compare_at: ``(n, α_k) → comparisons`` on the first ``n`` seeds at level ``α_k`` (CI at ``1 − α_k``).
        alpha: the overall error rate to keep.

    Returns:
        The state, and the comparisons of the last look done (of the first look when none is possible yet).
    """
    alphas = look_alphas(sizes, alpha)
    done: list[int] = []
    last: list[Comparison] = compare_at(min(complete_seeds, sizes[0]), alphas[0])
    first_decided: dict[int, Comparison] = {}  # a comparison keeps the look that first decided it
    for k, n in enumerate(sizes):
        if complete_seeds < n:
            break
        done.append(n)
        last = compare_at(n, alphas[k])
        for i, c in enumerate(last):
            if i not in first_decided and c.verdict is not None and c.verdict != NO_DIFFERENCE:
                first_decided[i] = c
        merged = [first_decided.get(i, c) for i, c in enumerate(last)]
        decided = len(first_decided) == len(last)
        if decided or k == len(sizes) - 1:
            reason = DECIDED if decided else MAX_SEEDS
            return SequentialState(done, alphas, n, alphas[k], True, reason, None), merged
    k = len(done)
    merged = [first_decided.get(i, c) for i, c in enumerate(last)]
    return SequentialState(done, alphas, done[-1] if done else 0, alphas[k], False, RUNNING, sizes[k]), merged


def stop_sentence(state: dict[str, Any], max_seeds: int) -> str:
    """Why the confirmation used the seeds it used, in words."""
    if not state["stopped"]:
        return f"{state['seeds']} of up to {max_seeds} seeds analysed; next look at {state['next_seeds']}"
    if state["reason"] == DECIDED:
        return (f"stopped at {state['seeds']} seeds: the CI (at the look's α = {state['alpha']:.2g}) "
                "excludes 0")
    return f"stopped at {state['seeds']} seeds: the maximum (max_seeds), the CI still includes 0"
