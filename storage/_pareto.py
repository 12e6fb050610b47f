"""The Pareto front of a study: the complete trials no other complete trial dominates.

A multi-objective study keeps one value per objective for each trial in Optuna's ledger (``trial_values``);
auxtune's own ``value`` column holds the first (primary) one only, for ordering and progress. The front is
computed here, with numpy over those vectors, so it does not depend on a sampler or on Optuna internals.

``pareto_sizes`` answers only how many trials are on the front of each of a page of studies (status lines, the
studies list, ``auxtune run``'s progress): it reads the objective values straight from Optuna's ``trials`` and
``trial_values`` tables in one query, as Optuna's own models map them, instead of loading every trial whole
(``pareto_front`` through ``get_all_trials``: 1.5–1.7 s of CPU for a 10 000-trial study, the count 0.05–0.15 s),
and counts a study again only once its count of complete trials changed (``bench/pareto_sizes.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.storages._rdb.models import TrialModel as OptunaTrialModel
from optuna.storages._rdb.models import TrialValueModel
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session

from storage._core import StoreCore, as_utc
from storage.models import StudyModel

#: Points of a block that ``non_dominated`` compares at once, against the front so far and among themselves.
_BLOCK = 256
#: Studies whose last front size a store keeps (``pareto_sizes``).
_SIZES_KEPT = 1024


@dataclass(frozen=True)
class ParetoSize:
    """How many complete trials of a multi-objective study are on its front, of how many complete trials."""

    count: int
    complete: int


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
    transitive), so each point is checked against the front found so far only, and against the points of its own
    block (``_BLOCK`` at a time, compared with numpy). That is O(n · front) comparisons rather than O(n²), in C:
    the dashboard recomputes the front of a 10 000-trial study whenever a trial finishes, and the studies page and
    status lines count it. Equal vectors do not dominate each other, so ties all stay.
    """
    keys = list(points)
    if not keys:
        return []
    values = np.asarray([points[k] for k in keys], dtype=float).reshape(len(keys), len(directions))
    return sorted(keys[r] for r in _front_rows(values, directions))


def _front_rows(values: np.ndarray, directions: Sequence[str]) -> list[int]:
    """Indices of the rows of ``values`` (a row per point, a column per objective) no other row dominates."""
    # Every objective turned into one to minimise; rows in lexicographic order (first objective first).
    values = values * np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    order = np.lexsort(values.T[::-1])
    values = values[order]
    front = values[:0]
    chosen: list[int] = []
    for start in range(0, len(values), _BLOCK):
        block, rows = values[start:start + _BLOCK], order[start:start + _BLOCK]
        keep = ~_dominated_by(front, block)
        block, rows = block[keep], rows[keep]
        keep = ~_dominated_by(block, block)
        front = np.concatenate([front, block[keep]])
        chosen.extend(int(r) for r in rows[keep])
    return chosen


def _dominated_by(by: np.ndarray, points: np.ndarray) -> np.ndarray:
    """For each row of ``points``, whether a row of ``by`` dominates it (every objective minimised)."""
    if not len(by) or not len(points):
        return np.zeros(len(points), dtype=bool)
    at_least = np.all(by[None, :, :] <= points[:, None, :], axis=2)
    better = np.any(by[None, :, :] < points[:, None, :], axis=2)
    return np.asarray(np.any(at_least & better, axis=1), dtype=bool)


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

    def pareto_sizes(self, study_ids: Sequence[int]) -> dict[int, ParetoSize]:
        """The size of the front of each multi-objective study in ``study_ids`` (``len(pareto_front(id))``) and
        the complete trials it was taken from; single-objective and unknown studies are left out.

        A complete trial never changes (Optuna refuses to), so while a study's count of complete trials is the
        same, so is its front: that is asked first, in one query, and only the studies whose count changed since
        this store last counted them are read again (their values, in one more query).
        """
        if not study_ids:
            return {}
        complete = (select(OptunaTrialModel.study_id, func.count())
                    .where(OptunaTrialModel.state == TrialState.COMPLETE).group_by(OptunaTrialModel.study_id))
        with self.session("reading the objective values of studies") as session:
            studies = {optuna_id: (study_id, list(directions), as_utc(created_at))
                       for study_id, optuna_id, directions, created_at in session.execute(
                           select(StudyModel.id, StudyModel.optuna_study_id, StudyModel.directions,
                                  StudyModel.created_at).where(StudyModel.id.in_(list(study_ids))))
                       if len(directions) > 1}
            if not studies:
                return {}
            # Optuna's trials.study_id is nullable in its model, so SQLAlchemy ≥ 2.1 types the key int | None.
            counts: dict[int | None, int] = dict(session.execute(
                complete.where(OptunaTrialModel.study_id.in_(list(studies)))).all())
            keys = {optuna_id: (optuna_id, created_at, counts.get(optuna_id, 0))
                    for optuna_id, (_, _, created_at) in studies.items()}
            with self._pareto_sizes_lock:
                out = {studies[o][0]: cached[1] for o in studies
                       if (cached := self._pareto_sizes.get(studies[o][0])) is not None and cached[0] == keys[o]}
            stale = {o: len(studies[o][1]) for o in studies if studies[o][0] not in out}
            values = _objective_values(session, stale) if stale else {}
        for optuna_id in stale:
            study_id, directions, _ = studies[optuna_id]
            points = values[optuna_id]
            out[study_id] = ParetoSize(count=len(_front_rows(points, directions)), complete=len(points))
            with self._pareto_sizes_lock:
                self._pareto_sizes[study_id] = (keys[optuna_id], out[study_id])
                self._pareto_sizes.move_to_end(study_id)
                while len(self._pareto_sizes) > _SIZES_KEPT:
                    self._pareto_sizes.popitem(last=False)
        return out


def _objective_values(session: Session, objectives: Mapping[int, int]) -> dict[int, np.ndarray]:
    """The objective values of the complete trials of each Optuna study of ``objectives`` (its id → how many
    objectives it has), read from Optuna's tables in one query: an array per study, a row per trial that has one
    value per objective (as ``ParetoOps._complete_trials`` takes them), a column per objective."""
    # value_type as its stored name: decoding 20 000 Enum cells took 3/4 of the time of reading them.
    stmt = (select(OptunaTrialModel.study_id, OptunaTrialModel.number, TrialValueModel.objective,
                   TrialValueModel.value, type_coerce(TrialValueModel.value_type, String))
            .join(TrialValueModel, TrialValueModel.trial_id == OptunaTrialModel.trial_id)
            .where(OptunaTrialModel.study_id.in_(list(objectives)), OptunaTrialModel.state == TrialState.COMPLETE))
    rows = session.connection().execute(stmt).all()  # no ORM rows: 20 000 of them at 10 000 trials
    out = {optuna_id: np.zeros((0, n)) for optuna_id, n in objectives.items()}
    if not rows:
        return out
    of_study, numbers, indices, stored, kinds = (np.asarray(c) for c in zip(*rows, strict=True))
    found = np.asarray([v if v is not None else  # ±inf: stored as NULL and its type
                        TrialValueModel.stored_repr_to_value(None, TrialValueModel.TrialValueType[k])
                        for v, k in zip(stored.tolist(), kinds.tolist(), strict=True)], dtype=float)
    for optuna_id, n in objectives.items():
        mine = of_study == optuna_id
        if not mine.any():
            continue
        held = np.bincount(numbers[mine])  # values per trial number; (trial, objective) is unique
        table = np.full((len(held), n), np.nan)
        fits = mine & (indices < n)
        table[numbers[fits], indices[fits]] = found[fits]
        out[optuna_id] = table[(held == n) & ~np.isnan(table).any(axis=1)]
    return out
