"""Hooks a trial runs with: the affinity probe, learned weighting and what else watches or steers a trial.

``tuner.engine.callbacks.base`` holds the hook types; ``trial_callbacks`` is the one answer to which callbacks a
trial of a study runs, as the loop itself builds none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner.engine.callbacks.affinity import affinity_probe
from tuner.engine.callbacks.base import TrialCallback

if TYPE_CHECKING:
    from tuner.engine.prepared import PreparedStudy


def trial_callbacks(prep: PreparedStudy, *callbacks: TrialCallback) -> list[TrialCallback]:
    """``callbacks``, then those every trial of ``prep.spec`` runs: the affinity probe, unless the spec turns it off
    (``affinity.every: 0``, or no aux task). Pass the list to ``run_trial``."""
    probe = affinity_probe(prep)
    return [*callbacks, probe] if probe is not None else list(callbacks)


__all__ = ["trial_callbacks"]
