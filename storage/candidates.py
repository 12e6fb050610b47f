"""Candidates: the distinct λ sets of a study, each with the values of its complete trials (issue #18).

Trials with identical params are one candidate: a re-evaluation (``search.reevaluate``) trains a trial's λ again
on its own seed, and the study's answer is the candidate with the best mean (``Store.ranked_candidates``). Pure
functions, shared by the search (which candidate to re-evaluate) and the answer (``/best``).
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def candidate_key(params: dict[str, Any]) -> str:
    """One key per distinct λ set (and trunk mode): the canonical JSON of the params."""
    return json.dumps(params, sort_keys=True, default=str)


@dataclass
class Candidate:
    """A distinct λ set: its first trial, the values of its complete trials, its evaluations under way."""

    params: dict[str, Any]
    first: int
    numbers: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    pending: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def se(self) -> float | None:
        """Standard error of the mean (None with one value)."""
        return statistics.stdev(self.values) / math.sqrt(self.n) if self.n > 1 else None


def group(rows: Iterable[tuple[int, dict[str, Any], float | None, bool]]) -> list[Candidate]:
    """Candidates from ``(number, params, value, pending)`` rows: ``value`` of a complete trial (else None),
    ``pending`` for a trial that counts as an evaluation without a value (queued, running, or ended without one)."""
    by_key: dict[str, Candidate] = {}
    for number, params, value, pending in sorted(rows, key=lambda r: r[0]):
        cand = by_key.setdefault(candidate_key(params), Candidate(params=dict(params), first=number))
        if value is not None and math.isfinite(value):
            cand.values.append(float(value))
            cand.numbers.append(number)
        elif pending:
            cand.pending += 1
    return list(by_key.values())


def ranked(candidates: Sequence[Candidate], direction: str) -> list[Candidate]:
    """Candidates with a complete trial, best mean first (ties: the earlier first trial)."""
    sign = -1.0 if direction == "maximize" else 1.0
    return sorted((c for c in candidates if c.n), key=lambda c: (sign * c.mean, c.first))
