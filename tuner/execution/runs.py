"""Executing confirmation and reference-arm runs: claim one from the store, train it, report it.

``RunWorker.run_next`` is what a worker does when it has no trial to run (``tuner.execution.worker`` calls it from
its loop): it first queues the automatic confirmation of any finished study whose spec asks for one, then leases
one run (``Store.claim_run``), holds it with a ``RunLease`` (``tuner.execution.lease``: a heartbeat thread while
it trains) and records the outcome. On shutdown the run goes back to the queue; a worker that dies silently lets
its lease expire and the next claim requeues the run. How a run trains is ``tuner.engine.runs``'s.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from storage import DEFAULT_LEASE_TIMEOUT_S, LeaseLost, RunClaim, Store, StoreError, StudyRecord
from tuner.analysis.confirm import (
    SPLIT_SEED_PARAM,
    TRAIN_PARAMS_PARAM,
    advance_confirmation,
    request_confirmation,
    wants_confirmation,
)
from tuner.engine.gpu import as_outcome
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.engine.runs import EpochGuard, RunOutcome, execute_run, run_spec
from tuner.engine.transfer import with_saved_models
from tuner.execution.datasets import DatasetCache
from tuner.execution.lease import Lease
from tuner.spec import stored_spec
from tuner.spec.params import with_params

logger = logging.getLogger(__name__)


class RunLease(Lease[RunOutcome]):
    """One claimed run: its heartbeat, and how its outcome is written to the store."""

    def __init__(self, store: Store, claim: RunClaim, stop: threading.Event, heartbeat_s: float):
        self.store, self.claim = store, claim
        super().__init__(stop, heartbeat_s, f"run {claim.arm}/seed {claim.seed} of {claim.study_name}")

    def renew(self) -> bool:
        return self.store.heartbeat_run(self.claim)

    def give_back(self, why: Exception) -> None:
        if self.store.release_run(self.claim):
            logger.info("%s given back to the queue (%s)", self.what, why)

    def fail(self, reason: str, trace: str) -> str | None:
        return self.finish(("failed", None, None, {"traceback": trace}, reason))

    def finish(self, result: RunOutcome) -> str | None:
        state, val, test, doc, reason = result
        try:
            self.store.finish_run(self.claim, state, val, test, doc, reason)
        except LeaseLost as exc:
            logger.warning("%s", exc)
            return None
        return state


class RunWorker:
    """Claims and executes runs for one worker process; one per ``tuner.execution.worker.Worker``."""

    def __init__(self, store: Store, worker_id: str, stop: threading.Event, *,
                 lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S, heartbeat_s: float = 5.0, max_attempts: int = 3,
                 device: str | None = None, auto_confirm_every_s: float = 5.0, datasets: DatasetCache | None = None):
        self.store, self.worker_id, self.stop = store, worker_id, stop
        self.datasets = datasets or DatasetCache(store)
        self.lease_timeout_s, self.heartbeat_s, self.max_attempts = lease_timeout_s, heartbeat_s, max_attempts
        self.device, self.auto_confirm_every_s = device, auto_confirm_every_s
        self._preps: dict[tuple[int, str, int | None, str], PreparedStudy] = {}
        self._checked_at = -float("inf")
        self._no_confirm: set[tuple[int, str]] = set()
        self.runs_done = 0

    def run_next(self, names: list[str] | None = None) -> bool:
        """Run one queued run (of the named studies, or any); False when there is none to run now."""
        self.queue_automatic_confirmations(names)
        claim = self.store.claim_run(self.worker_id, studies=names, lease_timeout_s=self.lease_timeout_s,
                                     max_attempts=self.max_attempts)
        if claim is None:
            return False
        self.execute(claim)
        return True

    def queue_automatic_confirmations(self, names: list[str] | None = None, force: bool = False) -> None:
        """Queue the confirmation of finished studies whose spec asks for one."""
        now = time.monotonic()
        # Scanning every study is throttled; for named studies (auxtune run/confirm) it is one cheap query, and
        # skipping it could let a worker exit before the confirmation of its just-finished study is queued.
        if names is None and not force and now - self._checked_at < self.auto_confirm_every_s:
            return
        self._checked_at = now
        for study in self.store.finished_studies_without_runs(names):
            key = (study.id, study.spec_hash)
            if key in self._no_confirm:
                continue
            try:
                if not wants_confirmation(stored_spec(study.spec)):
                    self._no_confirm.add(key)
                    continue
                request_confirmation(self.store, study)
            except StoreError:
                raise
            except Exception as exc:  # no result to confirm, or a spec this worker cannot read (ConfirmError, …)
                logger.warning("study %s: no automatic confirmation: %s: %s", study.name, type(exc).__name__, exc)
                self._no_confirm.add(key)

    def _prep(self, study: StudyRecord, split_seed: int | None = None,
              params: dict[str, Any] | None = None) -> PreparedStudy:
        """The study prepared to train runs; with ``split_seed``, on the data split that seed draws; with
        ``params``, at those searched training params (the best trial's: ``search.params``)."""
        key = (study.id, study.spec_hash, split_seed, json.dumps(params or {}, sort_keys=True))
        if key not in self._preps:
            spec = with_params(run_spec(stored_spec(self.datasets.materialize(study.spec))), params or {})
            if split_seed is not None:  # a confirmation that redraws the split per seed (confirm.resample_splits)
                workload = spec.workload.model_copy(update={"params": {**spec.workload.params,
                                                                       "split_seed": split_seed}})
                spec = spec.model_copy(update={"workload": workload})
                self._preps = {k: v for k, v in self._preps.items() if k[2] is None}  # one resampled split at a time
            self._preps[key] = with_saved_models(prepare(spec, self.device), self.store)
        return self._preps[key]

    def execute(self, claim: RunClaim) -> None:
        """Train a claimed run and record it; give it back on shutdown; drop it if the lease was lost."""
        lease = RunLease(self.store, claim, self.stop, self.heartbeat_s)
        outcome: RunOutcome | Exception
        study: StudyRecord | None = None
        prep: PreparedStudy | None = None
        try:
            study = self.store.get_study(claim.study_id)
            prep = self._prep(study, claim.params.get(SPLIT_SEED_PARAM), claim.params.get(TRAIN_PARAMS_PARAM))
            outcome = execute_run(prep, claim.kind, claim.params, claim.seed, [EpochGuard(lease.check)])
        except Exception as exc:  # ``conclude`` decides: give the run back, drop it, or record it as failed
            outcome = exc
        if prep is not None:  # out of memory: the run fails naming its batch size and device, as a trial does
            outcome = as_outcome(outcome, prep.spec.training.batch_size, prep.device)
        if lease.conclude(outcome) is not None:
            self.runs_done += 1
            if study is not None:  # the last run of a round: a sequential confirmation may need the next one
                self._advance(study)

    def _advance(self, study: StudyRecord) -> None:
        try:
            advance_confirmation(self.store, study)
        except StoreError:
            raise
        except Exception as exc:  # a report this version cannot build must not stop the worker
            logger.warning("study %s: the confirmation's next round was not queued: %s: %s", study.name,
                           type(exc).__name__, exc)
