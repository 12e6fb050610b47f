"""The one best-epoch tracker of a trial, alone (``tuner.engine.loop``) or a member of a population.

Which epoch is best, what the result reports of it, which weights are kept for the test and when early stopping
(``training.patience``) ends training are decided here only, so a population member books its epochs exactly
like the same trial run alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from tuner.results import EpochMetrics, TrialResult

#: The weights kept of the best epoch: a model's ``state_dict`` alone, a member's slice in a population.
S = TypeVar("S")


def _improves(value: float, best: float | None, direction: str) -> bool:
    """Strictly better than ``best`` (a tie keeps the earlier epoch); a NaN never is, and beats no best yet."""
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value > best if direction == "maximize" else value < best


class BestEpoch(Generic[S]):
    """Books a trial's epochs into its result and keeps the best one's weights.

    Args:
        result: the trial's result; its ``metric`` and ``direction`` say what is better, and ``epochs``,
            ``value``, ``best_epoch`` and ``val_accuracy`` are written here.
        patience: epochs without improvement after which training stops; None: it never stops early.
    """

    def __init__(self, result: TrialResult, patience: int | None):
        self.result, self.patience = result, patience
        #: The best epoch's weights; None while no epoch has improved (every objective so far NaN).
        self.state: S | None = None
        self.since_best = 0

    def book(self, metrics: EpochMetrics, snapshot: Callable[[], S]) -> None:
        """Add the epoch to the result; if its objective beats the best so far, it becomes the result's best
        epoch and ``snapshot()`` (taken now, before the weights move on) the weights kept."""
        result = self.result
        result.epochs.append(metrics)
        value = metrics.objective(result.metric)
        if _improves(value, result.value, result.direction):
            result.value, result.best_epoch, result.val_accuracy = value, metrics.epoch, metrics.val_accuracy
            self.state = snapshot()
            self.since_best = 0
        else:
            self.since_best += 1

    @property
    def patience_spent(self) -> bool:
        """``patience`` epochs in a row have not improved: training stops here."""
        return self.patience is not None and self.since_best >= self.patience
