"""Running claimed trials: one alone, under a lease, with its reporter; its outcome written as the study asks.

``TrialWorker`` is the trial half of a worker (``tuner.execution.worker.Worker`` picks the study and calls it;
``tuner.execution.population`` trains several of its leases at once). A trial is leased with the store's
``claim_trial`` (exactly once), held by a ``TrialLease`` (``tuner.execution.lease``) while it trains, reports its
sanity result and epochs as they happen (``StoreReporter``), and is concluded: finished, failed, given back on
SIGTERM, a pause or a store outage, or dropped once its lease was lost.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

from storage import Claim, Store, StudyRecord
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.callbacks.keeper import ModelKeeper
from tuner.engine.checkpoint import TrialCheckpoints
from tuner.engine.gpu import as_outcome
from tuner.engine.loop import run_trial
from tuner.engine.model import MultiTaskModel, resolve_device
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.engine.transfer import save_trial_model, with_saved_models
from tuner.execution.faults import fail_study, finish, give_back, is_store_fault
from tuner.execution.lease import Lease, LeaseAborted
from tuner.execution.reporter import StoreReporter, StudyCancelled
from tuner.results import TrialResult, trial_values
from tuner.search import REEVALUATES_ATTR, SearchBackend, SnapshotPruner, first_pruning_step, warmup_range
from tuner.spec import StudySpec
from tuner.spec.params import searched_params, with_params
from tuner.spec.transfer import lambda_params

logger = logging.getLogger(__name__)


@dataclass
class StudyContext:
    """A study as this worker built it: its spec, search backend, sampler and pruner, and (once needed) its data."""

    record: StudyRecord
    spec: StudySpec
    backend: SearchBackend
    sampler: Any = None
    pruner: Any = None
    prep: PreparedStudy | None = None


def trial_lambdas(claim: Claim) -> dict[str, float]:
    """The λ set a claimed trial trains with (its params but a searched ``trunk_mode``)."""
    return lambda_params(claim.params)


def trial_seed(spec: StudySpec, claim: Claim) -> int:
    """The seed of a claimed trial: the spec's seed plus the trial number (the same on every attempt)."""
    return spec.training.seed + claim.number


class TrialLease(Lease[TrialResult]):
    """One claimed trial: its heartbeat, its reporter, and how its outcome is written to the store."""

    def __init__(self, store: Store, ctx: StudyContext, claim: Claim, stop: threading.Event, heartbeat_s: float,
                 flush_s: float):
        self.store, self.ctx, self.claim = store, ctx, claim
        super().__init__(stop, heartbeat_s, f"trial {claim.number} of {claim.study_name}")
        #: Writes the trial's sanity result and epochs to the store and asks the pruner.
        spec = ctx.spec
        # A re-evaluation (``search.reevaluate``) measures a leader on one more seed: it is never pruned.
        again = claim.trial is not None and REEVALUATES_ATTR in claim.trial.user_attrs
        pruning = None if spec.search.pruner.name == "none" or again else SnapshotPruner(
            ctx.pruner, claim.study_name, str(spec.objective.direction), claim.number,
            partial(store.pruning_snapshot, claim), first_step=first_pruning_step(spec), refresh_s=flush_s,
            last_warmup=0 if spec.search.pruner.name == "hyperband" else warmup_range(spec)[1])
        self.reporter = StoreReporter(store, claim, spec.objective.metric, self, pruning, flush_s=flush_s)

    def renew(self) -> bool:
        return self.store.heartbeat(self.claim)

    def give_back(self, why: Exception) -> None:
        give_back(self.store, self.claim, why)

    def fail(self, reason: str, trace: str) -> str | None:
        return "failed" if finish(self.store, self.claim, "failed", None, {"traceback": trace}, reason) else None

    def conclude(self, outcome: TrialResult | Exception) -> str | None:
        """As every lease concludes, but a cancelled study's trial is finished ``failed`` (not retried)."""
        if isinstance(outcome, StudyCancelled) and not self.lost.is_set():
            self.end()
            logger.info("%s stopped: its study was cancelled", self.what)
            return "failed" if finish(self.store, self.claim, "failed", None, {}, str(outcome)) else None
        return super().conclude(outcome)

    def finish(self, result: TrialResult) -> str | None:
        state = {"complete": "complete", "pruned": "pruned", "failed_sanity": "failed_sanity"}[result.status]
        value = result.value if state != "failed_sanity" else None
        if state == "complete" and (value is None or value != value):
            state, value = "failed", None
            result.reason = "the objective was not finite in any epoch"
        values: float | list[float] | None = value
        if state == "complete" and self.ctx.spec.objective.multi:  # a Pareto study: every objective
            try:
                values = trial_values(self.ctx.spec.objective.metrics(), result)
            except ValueError as exc:
                state, values, result.reason = "failed", None, str(exc)
        return state if finish(self.store, self.claim, state, values, result.to_dict(), result.reason) else None


class StoreCheckpoints:
    """A leased trial's checkpoints in the store (``tuner.engine.checkpoint.CheckpointSink``): written under its
    lease, read by the attempt that resumes it."""

    def __init__(self, store: Store, claim: Claim):
        self.store, self.claim = store, claim

    def load(self) -> bytes | None:
        if self.claim.attempt == 1:  # a first attempt has none: no read per trial
            return None
        found = self.store.load_checkpoint(self.claim.trial_row_id)
        return None if found is None else found[1]

    def save(self, epoch: int, blob: bytes) -> None:
        self.store.save_checkpoint(self.claim, epoch, blob)


class TrialWorker:
    """Claims, trains and concludes trials for one worker process; one per ``tuner.execution.worker.Worker``."""

    def __init__(self, store: Store, worker_id: str, stop: threading.Event, *, lease_timeout_s: float,
                 heartbeat_s: float, max_attempts: int, device: str | None, epoch_flush_s: float):
        self.store, self.worker_id, self.stop = store, worker_id, stop
        self.lease_timeout_s, self.heartbeat_s, self.max_attempts = lease_timeout_s, heartbeat_s, max_attempts
        self.device, self.epoch_flush_s = device, epoch_flush_s
        #: Trials that trained to a result (written or not): the worker's fair share between studies counts them.
        self.trials_run = 0

    def claim(self, ctx: StudyContext) -> Claim | None:
        """Lease one trial of ``ctx``'s study (exactly once: ``Store.claim_trial``), or None if none can run now."""
        return self.store.claim_trial(
            ctx.record.id, self.worker_id, ctx.backend.suggest, sampler=ctx.sampler, pruner=ctx.pruner,
            lease_timeout_s=self.lease_timeout_s, max_attempts=self.max_attempts,
            max_parallel=ctx.spec.search.max_parallel or None,
        )

    def lease(self, ctx: StudyContext, claim: Claim) -> TrialLease:
        """Hold ``claim`` (its heartbeat starts now) with the reporter it trains with."""
        return TrialLease(self.store, ctx, claim, self.stop, self.heartbeat_s, self.epoch_flush_s)

    def prepared(self, ctx: StudyContext) -> PreparedStudy:
        """The study's data on this worker's device, with the saved models its spec names
        (``tuner.engine.transfer``)."""
        if ctx.prep is None:
            ctx.prep = with_saved_models(prepare(ctx.spec, self.device), self.store)
        return ctx.prep

    def trial_prepared(self, ctx: StudyContext, claim: Claim) -> PreparedStudy:
        """The prepared study as ``claim`` trains: with its searched params (``search.params``) set in its spec.
        A training param reuses the study's data (new batches at a new batch size); a workload's own param
        prepares that workload's data (``prepare`` caches it per workload params)."""
        prep = self.prepared(ctx)
        params = searched_params(claim.params)
        if not params:
            return prep
        spec = with_params(ctx.spec, params)
        if spec.workload == ctx.spec.workload:
            return dataclasses.replace(prep, spec=spec)
        return with_saved_models(prepare(spec, self.device), self.store)

    def run_claim(self, ctx: StudyContext, claim: Claim) -> None:
        """Run one claimed trial and report it; give it back on shutdown; drop it if the lease was lost."""
        lease = self.lease(ctx, claim)
        try:
            prep = self.trial_prepared(ctx, claim)
        except Exception as exc:
            self._unpreparable(lease, exc)
            return
        outcome: TrialResult | Exception
        keeper = ModelKeeper()
        try:
            outcome = run_trial(prep, trial_lambdas(claim), seed=trial_seed(prep.spec, claim),
                                callbacks=trial_callbacks(prep, lease.reporter, keeper),
                                trunk_mode=ctx.spec.trunk_mode_of(claim.params),
                                checkpoints=TrialCheckpoints(StoreCheckpoints(self.store, claim),
                                                             prep.spec.training.checkpoint_every))
            lease.reporter.flush()
        except Exception as exc:  # ``conclude`` decides: give the trial back, drop it, or record it as failed
            outcome = exc
        state = self.conclude(lease, outcome)
        if state is not None:  # the trial ended (a trial given back keeps its checkpoint for the next attempt)
            self.store.drop_checkpoint(claim.trial_row_id)
        if state == "complete" and keeper.model is not None:
            self.save_model(ctx, claim, keeper.model)

    def conclude(self, lease: TrialLease, outcome: TrialResult | Exception, members: int = 1) -> str | None:
        """Write how a leased trial ended (``TrialLease.conclude``); returns the state written, or None.

        Out of device memory (``tuner.engine.gpu``): the trial fails with a reason naming its batch size and
        device (``members``: trials trained together with it), and what it held is freed before the next one.
        """
        spec = lease.ctx.spec
        device = lease.ctx.prep.device if lease.ctx.prep is not None else resolve_device(spec.training.device)
        outcome = as_outcome(outcome, spec.training.batch_size, device, members)
        state = lease.conclude(outcome)
        if not isinstance(outcome, Exception):
            self.trials_run += 1
        return state

    def _unpreparable(self, lease: TrialLease, exc: Exception) -> None:
        """The study's workload cannot be prepared here: fail the study (every trial would fail alike) and give
        the trial back, so a fixed study resumes with it. A store error (loading a saved model) only gives the
        trial back."""
        lease.end()
        if not is_store_fault(exc):
            fail_study(self.store, lease.ctx.record, self.worker_id, "the study's workload cannot be prepared", exc)
        self.conclude(lease, LeaseAborted(f"the study cannot be prepared: {type(exc).__name__}"))

    def save_model(self, ctx: StudyContext, claim: Claim, model: MultiTaskModel) -> None:
        """Keep a complete trial's model in the store as its study's ``artifacts.save`` asks: ``all`` complete
        trials, or only the ``best`` so far (the older best's model is dropped; the store decides it again in the
        transaction that saves, as other workers may finish better trials meanwhile). A failure to save is logged
        and leaves the trial as it is."""
        save = ctx.spec.artifacts.save
        if save == "none" or ctx.prep is None:
            return
        try:
            if save == "best":
                best = self.store.best_trial(claim.study_id)
                if best is None or best.number != claim.number:
                    return
            save_trial_model(self.store, claim.study_id, claim.number, ctx.prep, model, best=save == "best")
        except Exception:
            logger.exception("trial %d of %s: saving its model failed", claim.number, claim.study_name)
