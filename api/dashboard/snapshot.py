"""One study as the dashboard sees it, read once per change and shared by every page, poll and figure.

``SnapshotCache.get`` asks the store for the study's version (two aggregate queries); only when it changed are
the trials re-read (light columns, ``Store.trial_points``), the sanity outcomes summarised and the confirmation
runs read; the trials' affinity results (whole result documents) are re-read only when a trial finished since
the last snapshot, not when one was merely claimed. Everything the
dashboard derives (figures, table pages) is computed from a snapshot and memoised on it, so a poll of an
unchanged study costs the version query and nothing else, at 100 or 10 000 trials.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from storage import FINISHED_TRIAL_STATES, RunRecord, SanitySummary, Store, StudyRecord, TrialPoint
from tuner.analysis.affinity_report import affinity_report
from tuner.spec import primary_metric

T = TypeVar("T")

#: Labels of the control trials (enqueued first unless ``search.controls`` is false).
BASELINE, EQUAL = "baseline λ=0", "λ=1"


@dataclass(frozen=True)
class LambdaDim:
    """One searched λ: the aux task's name and its bounds."""

    name: str
    low: float
    high: float
    log: bool = False

    def clip(self, value: float) -> float:
        return min(max(value, self.low), self.high)


def lambda_space(spec: dict[str, Any], points: list[TrialPoint]) -> tuple[list[LambdaDim], dict[str, float]]:
    """The searched λ (with bounds) and the fixed ones of a stored spec.

    A spec that names no aux task (written by another tool) falls back to the params seen in the trials,
    bounded by their observed range.
    """
    dims: list[LambdaDim] = []
    fixed: dict[str, float] = {}
    for task in spec.get("aux_tasks") or []:
        lam = task.get("lambda") or {}
        if lam.get("fixed") is not None:
            fixed[str(task["name"])] = float(lam["fixed"])
        else:
            dims.append(LambdaDim(str(task["name"]), float(lam.get("low", 0.0)), float(lam.get("high", 2.0)),
                                  bool(lam.get("log", False))))
    if not dims:
        seen: dict[str, list[float]] = {}
        for p in points:
            for key, value in p.params.items():
                if isinstance(value, int | float):
                    seen.setdefault(key, []).append(float(value))
        dims = [LambdaDim(k, min(v), max(v)) for k, v in sorted(seen.items())]
    return dims, fixed


def control_labels(spec: dict[str, Any], dims: list[LambdaDim], points: list[TrialPoint]) -> dict[int, str]:
    """Trial number → control label, for the first trials whose λ are all 0 (baseline) or all 1 (clipped into
    the bounds, as ``SearchBackend.controls`` enqueues them)."""
    if not (spec.get("search") or {}).get("controls", True) or not dims:
        return {}
    targets = [(BASELINE, {d.name: d.clip(0.0) for d in dims}), (EQUAL, {d.name: d.clip(1.0) for d in dims})]
    out: dict[int, str] = {}
    for point in points[: len(targets)]:
        for label, params in targets:
            if label not in out.values() and _same(point.params, params):
                out[point.number] = label
                break
    return out


def _same(params: dict[str, Any], expected: dict[str, float]) -> bool:
    return set(params) == set(expected) and all(
        isinstance(params[k], int | float) and math.isclose(float(params[k]), v, abs_tol=1e-12)
        for k, v in expected.items())


@dataclass
class StudySnapshot:
    """A study at one version: its record, every trial (light), its λ space, controls and sanity outcomes, its
    confirmation runs, its task-affinity report (``tuner.analysis.affinity_report``; None until a trial measured it)
    and,
    on a multi-objective study, each complete trial's objective values by number (empty on a single-objective one)."""

    version: str
    study: StudyRecord
    points: list[TrialPoint]
    dims: list[LambdaDim]
    fixed: dict[str, float]
    controls: dict[int, str]
    sanity: SanitySummary
    runs: list[RunRecord] = field(default_factory=list)
    affinity: dict[str, Any] | None = None
    objectives: dict[int, list[float]] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def maximize(self) -> bool:
        return self.study.direction == "maximize"

    @property
    def multi(self) -> bool:
        """Whether the study has several objectives (its answer is a Pareto front)."""
        return len(self.study.directions) > 1

    @property
    def metric(self) -> str:
        return primary_metric(self.study.spec)

    def memo(self, key: str, build: Callable[[], T]) -> T:
        """``build()`` once per snapshot and key (figures, sorted orders)."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]  # type: ignore[no-any-return]
        value = build()
        with self._lock:
            return self._memo.setdefault(key, value)  # type: ignore[no-any-return]

    @property
    def complete(self) -> list[TrialPoint]:
        """Complete trials with a finite value, by number."""
        return self.memo("complete", lambda: [p for p in self.points if p.state == "complete" and _finite(p.value)])

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` beats ``b`` in the study's direction."""
        return a > b if self.maximize else a < b

    @property
    def best(self) -> TrialPoint | None:
        """The best complete trial (lowest number on ties), as ``Store.best_trial`` picks it."""
        best: TrialPoint | None = None
        for p in self.complete:
            if best is None or self.better(float(p.value), float(best.value)):  # type: ignore[arg-type]
                best = p
        return best

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self.points:
            out[p.state] = out.get(p.state, 0) + 1
        return out


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def finished_key(points: list[TrialPoint]) -> tuple[tuple[int, int, str], ...]:
    """Which trials have finished, and in which attempt: a trial's result changes only when this does."""
    return tuple((p.number, p.attempt, p.state) for p in points if p.state in FINISHED_TRIAL_STATES)


class SnapshotCache:
    """The latest snapshot of the most recently viewed studies (an LRU of ``size``), safe across threads."""

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._items: OrderedDict[int, StudySnapshot] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, store: Store, study: StudyRecord) -> StudySnapshot:
        """The snapshot of ``study`` at its current version (re-read only if the version changed)."""
        version = store.dashboard_version(study.id)
        with self._lock:
            cached = self._items.get(study.id)
            if cached is not None and cached.version == version:
                self._items.move_to_end(study.id)
                return cached
        points = store.trial_points(study.id)
        dims, fixed = lambda_space(study.spec, points)
        if cached is not None and finished_key(cached.points) == finished_key(points):
            affinity, objectives = cached.affinity, cached.objectives
        else:
            affinity = affinity_report(store.trials(study.id, states=list(FINISHED_TRIAL_STATES)), study.direction)
            objectives = store.objective_values(study.id) if len(study.directions) > 1 else {}
        snapshot = StudySnapshot(version=version, study=store.get_study(study.id), points=points, dims=dims,
                                 fixed=fixed, controls=control_labels(study.spec, dims, points),
                                 sanity=store.sanity_summary(study.id), runs=store.runs(study.id), affinity=affinity,
                                 objectives=objectives)
        with self._lock:
            self._items[study.id] = snapshot
            self._items.move_to_end(study.id)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return snapshot
