"""Checkpoints of a long trial (``training.checkpoint_every``): a requeued attempt resumes where it stopped.

A checkpoint, taken at an epoch's end, holds everything the rest of the trial depends on: the model's weights and
buffers, the optimiser, its lr schedule and grad scaler (``StepControls.state_dict``), the best epoch so far (its
weights, the epochs booked, the patience count), torch's CPU generator (and the GPU's), the minibatch-order
generator(s) of the training split, a domain model's draw count, and the state of every callback that has one
(``state_dict``/``load_state_dict``: the affinity probe's sums). Restored, the trial continues exactly as it
would have: on the CPU with the same seed, the resumed trial's figures equal an uninterrupted run's.

Where checkpoints go is a ``CheckpointSink`` (a worker's: the store's ``auxtune_checkpoints`` table, one row per
trial, dropped when the trial ends); this module knows only bytes. ``checkpoint_every: auto`` saves once at least
``AUTO_EVERY_S`` seconds of training have passed since the last one (a short trial never writes one).
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from tuner.engine.batches import SplitBatches
from tuner.engine.best_epoch import BestEpoch
from tuner.engine.callbacks.base import TrialCallback
from tuner.engine.controls import StepControls
from tuner.results import EpochMetrics

#: ``checkpoint_every: auto``: the least training time between two checkpoints.
AUTO_EVERY_S = 60.0


class CheckpointSink(Protocol):
    """Where one trial's checkpoint is kept (the last one only)."""

    def load(self) -> bytes | None:
        """The last checkpoint saved for this trial, or None."""

    def save(self, epoch: int, blob: bytes) -> None:
        """Keep ``blob`` (taken at the end of ``epoch``) as the trial's checkpoint, replacing any older one."""


@dataclass(frozen=True)
class Resumed:
    """Where a resumed trial stands: the last epoch trained and the optimiser steps taken."""

    epoch: int
    steps: int


def _stateful(callbacks: Sequence[TrialCallback]) -> list[Any]:
    return [cb for cb in callbacks if callable(getattr(cb, "state_dict", None))]


def _rng_states(device_cuda: bool) -> dict[str, Any]:
    return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if device_cuda else None}


class TrialCheckpoints:
    """One trial's checkpoints: ``resume`` before its first epoch, ``after_epoch`` after each one.

    Args:
        sink: where the bytes go.
        every: ``training.checkpoint_every`` (epochs; 0: never; ``auto``: by time, ``AUTO_EVERY_S``).
    """

    def __init__(self, sink: CheckpointSink, every: int | str):
        self.sink, self.every = sink, every
        self._since = time.monotonic()
        #: Checkpoints saved by this attempt, and the seconds they took (bench/user_module.py reads them).
        self.saved, self.seconds = 0, 0.0

    def due(self, epoch: int) -> bool:
        if self.every == "auto":
            return time.monotonic() - self._since >= AUTO_EVERY_S
        return isinstance(self.every, int) and self.every > 0 and (epoch + 1) % self.every == 0

    def after_epoch(self, epoch: int, steps: int, model: nn.Module, controls: StepControls, train: SplitBatches,
                    best: BestEpoch[Any], callbacks: Sequence[TrialCallback]) -> None:
        """Save a checkpoint at the end of ``epoch`` if one is due."""
        if not self.due(epoch):
            return
        start = time.perf_counter()
        result = best.result
        state = {
            "epoch": epoch, "steps": steps, "model": model.state_dict(), "controls": controls.state_dict(),
            "batches": train.state_dict(), "rng": _rng_states(train.device.type == "cuda"),
            "draws": getattr(model, "draws", None),
            "best": {"state": best.state, "since_best": best.since_best, "value": result.value,
                     "best_epoch": result.best_epoch, "val_accuracy": result.val_accuracy,
                     "epochs": [copy.deepcopy(vars(m)) for m in result.epochs]},
            "callbacks": [cb.state_dict() for cb in _stateful(callbacks)],
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.sink.save(epoch, buffer.getvalue())
        self.saved += 1
        self.seconds += time.perf_counter() - start
        self._since = time.monotonic()

    def resume(self, model: nn.Module, controls: StepControls, train: SplitBatches, best: BestEpoch[Any],
               callbacks: Sequence[TrialCallback]) -> Resumed | None:
        """Load the trial's last checkpoint into the parts given, or None when there is none."""
        blob = self.sink.load()
        if blob is None:
            return None
        state = torch.load(io.BytesIO(blob), map_location=train.device, weights_only=True)
        model.load_state_dict(state["model"])
        controls.load_state_dict(state["controls"])
        train.load_state_dict(state["batches"])
        torch.set_rng_state(state["rng"]["cpu"].cpu())
        if state["rng"]["cuda"] is not None and train.device.type == "cuda":
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng"]["cuda"]])
        if state["draws"] is not None:
            model.draws = state["draws"]
        kept, result = state["best"], best.result
        best.state, best.since_best = kept["state"], kept["since_best"]
        result.value, result.best_epoch, result.val_accuracy = kept["value"], kept["best_epoch"], kept["val_accuracy"]
        result.epochs = [EpochMetrics(**m) for m in kept["epochs"]]
        for cb, cb_state in zip(_stateful(callbacks), state["callbacks"], strict=False):
            cb.load_state_dict(cb_state)
        self._since = time.monotonic()
        return Resumed(int(state["epoch"]), int(state["steps"]))
