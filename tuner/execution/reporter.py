"""The callback that reports a leased trial to the store as it trains, and stops it when it must stop."""

from __future__ import annotations

import time
from typing import Any

from storage import Claim, Store
from tuner.engine.callbacks.base import TrainStep, TrialCallback, TrialPruned
from tuner.execution.lease import Lease, LeaseAborted
from tuner.execution.study_watch import DELETED, STUDY_CHECK_S, StudyWatch
from tuner.results import EpochMetrics, SanityResult
from tuner.search import SnapshotPruner, pruning_step


def _row(metrics: EpochMetrics) -> dict:
    # A shallow copy (each field is a float or a flat dict): ``dataclasses.asdict`` took 30 µs an epoch.
    return {k: dict(v) if isinstance(v, dict) else v for k, v in vars(metrics).items()}


class StudyCancelled(LeaseAborted):
    """The trial's study was cancelled while it trained: the trial ends as ``failed`` and is not retried."""


class StoreReporter(TrialCallback):
    """Writes the gate and the epochs to the store, asks the pruner, and stops on shutdown, lost lease, or a
    paused or cancelled study.

    Epochs are written in batches, at most every ``flush_s`` seconds and before the trial is reported: a
    transaction per epoch would cost more than a short epoch itself. With a pruner (``pruning``), each epoch's
    objective is decided on in memory against a snapshot of the other trials (``SnapshotPruner``, read at most
    every ``flush_s``) and goes to Optuna's ledger with the batched epochs: pruning adds no write. The study's
    status is read at most every ``study_check_s`` seconds (between gate steps and epochs), so ``POST /cancel``
    or ``/pause`` stops a long trial within about that time instead of after its last epoch.
    """

    def __init__(self, store: Store, claim: Claim, metric: str, lease: Lease, pruning: SnapshotPruner | None,
                 flush_s: float = 1.0, study_check_s: float = STUDY_CHECK_S):
        self.store, self.claim, self.metric, self.lease = store, claim, metric, lease
        self.pruning, self.flush_s = pruning, flush_s
        self.study = StudyWatch(store, claim.study_id, "running", study_check_s)
        self._pending: list[tuple[int, dict]] = []
        self._reported: list[tuple[int, float]] = []
        self._attrs_written: dict[str, Any] = {}
        self._flushed_at = time.monotonic()

    def flush(self) -> None:
        attrs = {} if self.pruning is None else {k: v for k, v in self.pruning.system_attrs.items()
                                                 if self._attrs_written.get(k, self) != v}
        if self._pending or self._reported or attrs:
            self.store.record_epochs(self.claim, self._pending, self._reported, attrs)
            self._pending, self._reported = [], []
            self._attrs_written.update(attrs)
        self._flushed_at = time.monotonic()

    def _check(self) -> None:
        self.lease.check()
        status = self.study.status()
        if status == "cancelled":
            self.flush()  # the epochs trained so far stay readable, as a cancelled study's results do
            raise StudyCancelled("stopped: the study was cancelled while this trial trained")
        if status in ("paused", DELETED):
            raise LeaseAborted(f"the study was {status}")

    def should_stop(self) -> bool:
        self._check()  # raises the abort: the trial ends as it would at an epoch's end
        return False

    def on_step(self, step: TrainStep) -> None:
        self._check()  # a long epoch (a large training split) stops mid-way too; ~1 µs a step (a step: ~1 ms)

    def on_sanity_end(self, result: SanityResult) -> None:
        self._check()
        self.store.record_sanity(self.claim, result.to_dict())

    def on_resume(self, epochs: list[EpochMetrics]) -> None:
        """The epochs an earlier attempt trained before its checkpoint: this attempt's rows hold them too."""
        self._pending.extend((m.epoch, _row(m)) for m in epochs)
        self.flush()

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self._check()
        self._pending.append((metrics.epoch, _row(metrics)))
        value = metrics.objective(self.metric)
        pruned = False
        if self.pruning is not None and value == value:
            step = pruning_step(metrics.epoch)
            self._reported.append((step, value))
            pruned = self.pruning.should_prune(step, value)
        if pruned or time.monotonic() - self._flushed_at >= self.flush_s:
            self.flush()
        if pruned:
            raise TrialPruned
