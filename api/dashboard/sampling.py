"""Which trials a plot draws when a study has more than a browser should get.

Up to ``limit`` trials every one is drawn. Past it the plot keeps the trials that carry the story, namely the
controls, every trial that improved the best so far, and the best ``limit // 5`` by value, then fills the
rest of the budget with trials evenly spaced by number (deterministic, so a poll does not make the plot jump).
Aggregates (best-so-far line, contour grids, counts, importance) are computed on all trials, never on the
sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from api.dashboard.snapshot import StudySnapshot
from storage import TrialPoint

#: Default number of points per plot; ~1 500 points of a few numbers each is ~60 kB of JSON.
PLOT_LIMIT = 1500


def improvements(snapshot: StudySnapshot) -> list[TrialPoint]:
    """The complete trials that improved the best value so far, in trial order (the best-so-far steps)."""
    def build() -> list[TrialPoint]:
        out: list[TrialPoint] = []
        for p in snapshot.complete:
            if not out or snapshot.better(float(p.value), float(out[-1].value)):  # type: ignore[arg-type]
                out.append(p)
        return out

    return snapshot.memo("improvements", build)


def top(snapshot: StudySnapshot, k: int) -> list[TrialPoint]:
    """The ``k`` best complete trials."""
    ranked = snapshot.memo("ranked", lambda: sorted(
        snapshot.complete, key=lambda p: (-p.value if snapshot.maximize else p.value, p.number)))  # type: ignore
    return ranked[:k]


def spread(points: Sequence[TrialPoint], keep: Iterable[int], limit: int) -> list[TrialPoint]:
    """``points`` if there are at most ``limit``; else those numbered in ``keep`` plus evenly spaced others,
    ``limit`` in all (or just ``keep`` if it is larger), by number."""
    if len(points) <= limit:
        return list(points)
    keep = set(keep)
    kept = [p for p in points if p.number in keep]
    others = [p for p in points if p.number not in keep]
    budget = max(0, limit - len(kept))
    if budget and others:
        step = len(others) / budget
        kept += [others[int(i * step)] for i in range(min(budget, len(others)))]
    return sorted(kept, key=lambda p: p.number)


def plot_sample(snapshot: StudySnapshot, limit: int = PLOT_LIMIT) -> list[TrialPoint]:
    """The complete trials a λ plot or the history draws (see the module's docstring)."""
    def build() -> list[TrialPoint]:
        keep = {*snapshot.controls, *(p.number for p in improvements(snapshot)),
                *(p.number for p in top(snapshot, limit // 5))}
        return spread(snapshot.complete, keep, limit)

    return snapshot.memo(f"sample:{limit}", build)
