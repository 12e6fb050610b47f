"""The hooks a trial runs: ``TrialCallback``, the ``TrainStep`` its ``on_step`` sees, and their one dispatch.

The training loop (``tuner.engine.loop``) and the population (``tuner.engine.population.run``) call every hook
through ``dispatch``; a callback never imports the loop. The loop runs only the callbacks it is given: those
every trial of a study runs (the affinity probe) come from ``tuner.engine.callbacks.trial_callbacks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from tuner.engine.losses import LossBreakdown
from tuner.engine.model import MultiTaskModel
from tuner.results import SanityResult
from tuner.workloads import Split

if TYPE_CHECKING:
    from tuner.results import EpochMetrics, TrialResult


class TrialPruned(Exception):
    """Raised by a callback (e.g. a pruner) to stop the trial after an epoch."""


@dataclass
class TrainStep:
    """One optimisation step, handed to ``on_step`` after the forward pass and before ``loss.backward()``.

    ``losses`` keeps its graph, so a hook can take gradients of single terms (the affinity probe); ``loss`` is
    what the loop backpropagates: a learned-weighting arm (``tuner.engine.callbacks.weighting``) replaces it.
    """

    number: int
    epoch: int
    model: MultiTaskModel
    batch: Split
    losses: LossBreakdown
    loss: torch.Tensor


class TrialCallback:
    """Hooks into a trial. Override what you need; raise ``TrialPruned`` from ``on_epoch_end`` to stop."""

    def should_stop(self) -> bool:
        """Asked between the sanity gate's steps, before any other hook has run: True (or an exception of the
        callback's own, which then leaves ``run_trial``) stops the trial there. A worker's reporter uses it so
        that SIGTERM or a cancelled study does not wait for a long gate to finish."""
        return False

    def on_sanity_end(self, result: SanityResult) -> None:
        pass

    def on_resume(self, epochs: list[EpochMetrics]) -> None:
        """The trial resumed from a checkpoint (``tuner.engine.checkpoint``): ``epochs`` were trained by an earlier
        attempt and are not run again (a reporter records them for this attempt; nothing is pruned on them)."""

    def on_step(self, step: TrainStep) -> None:
        pass

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        pass

    def on_train_end(self, model: MultiTaskModel) -> None:
        """Training is over; ``model`` holds its best epoch's weights and is about to be tested."""

    def on_test_end(self, result: TrialResult) -> None:
        """The trained model was tested: ``result`` holds all but its ``seconds``, and a callback adds to it what
        it measured (the affinity probe: ``result.affinity``). A trial that fails its sanity gate never gets here."""


def dispatch(callbacks: Sequence[TrialCallback], hook: str, arg: Any) -> None:
    """Call ``hook`` of every callback with ``arg``, in order; an exception stops the rest and leaves here."""
    for cb in callbacks:
        getattr(cb, hook)(arg)


def stop_requested(callbacks: Sequence[TrialCallback]) -> bool:
    """Whether any callback asks to stop now (``TrialCallback.should_stop``)."""
    return any(cb.should_stop() for cb in callbacks)
