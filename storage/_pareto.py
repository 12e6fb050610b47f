"""The Pareto front of a study: the complete trials no other complete trial dominates.

A multi-objective study keeps one value per objective for each trial in Optuna's ledger (``trial_values``);
auxtune's own ``value`` column holds the first (primary) one only, for ordering and progress. The front is
computed here, in plain Python over those vectors, so it does not depend on a sampler or on Optuna internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from storage._core import StoreCore


@dataclass(frozen=True)
class ParetoTrial:
    """One trial of a study's Pareto front: its number, searched λ and one value per objective."""

    number: int
    params: dict[str, Any]
    values: list[float]


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """True if ``a`` is at least as good as ``b`` on every objective and better on one."""
    sign = [1.0 if d == "maximize" else -1.0 for d in directions]
    at_least = all(s * x >= s * y for s, x, y in zip(sign, a, b, strict=True))
    return at_least and any(s * x > s * y for s, x, y in zip(sign, a, b, strict=True))


def non_dominated(points: Mapping[int, Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Keys of the points no other point dominates, sorted.

    The points are visited best first, lexicographically over the objectives: a point's dominators all come
    before it, and whatever dominates it is on the front or dominated by a point of the front (dominance is
    transitive), so each point is checked against the front found so far only. That is O(n · front) rather than
    O(n²): the dashboard recomputes the front of a 10 000-trial study whenever a trial finishes. Equal vectors
    do not dominate each other, so ties all stay.
    """
    sign = [1.0 if d == "maximize" else -1.0 for d in directions]
    order = sorted(points, key=lambda k: [-s * x for s, x in zip(sign, points[k], strict=True)])
    front: list[int] = []
    for k in order:
        if not any(dominates(points[f], points[k], directions) for f in front):
            front.append(k)
    return sorted(front)


class ParetoOps(StoreCore):
    def _complete_trials(self, study_id: int) -> tuple[list[str], dict[int, FrozenTrial]]:
        """The study's directions and its complete trials that carry one value per objective, by number."""
        study = self.get_study(study_id)
        with self._optuna_errors("reading the trial values"):
            frozen = self._optuna_storage.get_all_trials(study.optuna_study_id, deepcopy=False,
                                                         states=(TrialState.COMPLETE,))
        n = len(study.directions)
        return study.directions, {t.number: t for t in frozen if t.values and len(t.values) == n}

    def objective_values(self, study_id: int) -> dict[int, list[float]]:
        """Every objective's value of each complete trial, by trial number, as Optuna's ledger holds them."""
        _, trials = self._complete_trials(study_id)
        return {n: [float(v) for v in t.values] for n, t in trials.items()}

    def pareto_front(self, study_id: int) -> list[ParetoTrial]:
        """The complete trials no other complete trial dominates, by number (for one objective: the best ties)."""
        directions, trials = self._complete_trials(study_id)
        front = non_dominated({n: t.values for n, t in trials.items()}, directions)
        return [ParetoTrial(number=n, params=dict(trials[n].params), values=[float(v) for v in trials[n].values])
                for n in front]
