"""Noise-aware selection (``search.reevaluate: {top_k, seeds}``, issue #18): the leading λ sets run again on more
seeds during the search, and the study's answer is the λ set with the best **mean**.

Every trial is one noisy sample (its seed is ``training.seed + number``): the best single value of a search
overstates its own choice by several points, and a lucky seed can win. With ``reevaluate``:

- **What is stored.** A re-evaluation is an ordinary trial of the study with the same λ as the trial it repeats
  and its own number (so its own seed), tagged with the user attribute ``auxtune:reevaluates`` = that trial's
  number. It is not proposed by the sampler: when a new trial is claimed and a re-evaluation is due, the trial's
  λ are fixed to the candidate's before the sampler is asked for anything. The sampler then sees it as what it is,
  one more observation at the same λ (GP and Ax model the noise; TPE counts the point once more).
- **When one is due.** Candidates are the distinct λ sets (trials with identical λ are one candidate), ranked by
  the mean of their complete trials; once the study has ``max(5, 2 · top_k)`` complete trials, a new trial goes
  to the best-ranked of the ``top_k`` leading candidates that has fewer than ``seeds`` evaluations (complete, under
  way, or ended without a value; a re-evaluation is never pruned). A candidate whose mean falls back leaves the
  top; a new trial that leads is re-evaluated in turn.
- **Cost.** Counted in ``n_trials`` (the study's budget is unchanged; re-evaluations take some of its trials),
  and at most half of ``n_trials`` are re-evaluations, so the sampler always keeps half the budget.
- **Ranking.** ``/best`` and ``auxtune best`` answer with the candidate of the best mean and say over how many
  evaluations (``tuner.analysis.documents``); without ``reevaluate`` every candidate has one evaluation and the
  answer is the best trial, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from storage.candidates import group, ranked
from tuner.spec import ReevaluateSpec

REEVALUATES_ATTR = "auxtune:reevaluates"
"""User attribute of a re-evaluation trial: the number of the trial whose λ it trains again."""


def reevaluation_due(trials: Sequence[FrozenTrial], cfg: ReevaluateSpec, n_trials: int,
                     direction: str) -> tuple[int, dict[str, Any]] | None:
    """The (first trial number, λ) of the candidate a new trial should re-evaluate, or None: let the sampler
    propose (see the module docstring for the rule)."""
    rows: list[tuple[int, dict[str, Any], float | None, bool]] = []
    reevaluations = complete = 0
    for t in trials:
        params = t.params or t.system_attrs.get("fixed_params") or {}
        if not params:
            continue  # the trial being asked for now
        reevaluations += REEVALUATES_ATTR in t.user_attrs
        value = t.value if t.state == TrialState.COMPLETE else None
        complete += value is not None
        # A trial under way, pruned or failed counts as an evaluation (no value): a candidate is not re-run forever.
        rows.append((t.number, params, value, value is None))
    if complete < max(5, 2 * cfg.top_k) or reevaluations >= n_trials // 2:
        return None
    for cand in ranked(group(rows), direction)[:cfg.top_k]:
        if cand.n + cand.pending < cfg.seeds:
            return cand.first, cand.params
    return None
