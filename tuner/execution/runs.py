"""Executing confirmation and reference-arm runs: claim one from the store, train it, report it.

``RunWorker.run_next`` is what a worker does when it has no trial to run (``tuner.execution.worker`` calls it from its
loop): it first queues the automatic confirmation of any finished study whose spec asks for one, then leases
one run (``Store.claim_run``), renews the lease from a heartbeat thread while it trains, and records the
outcome. On shutdown the run goes back to the queue; a worker that dies silently lets its lease expire and
the next claim requeues the run. A run trains like a trial of its study (same data, epochs, optimiser),
without the sanity gate (its λ set already passed it in the search) and without the affinity probe; it also
stores the test split's confusion matrix for the error analysis.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

import torch

from storage import LeaseLost, RunClaim, Store, StoreError, StoreUnavailable, StudyRecord
from tuner.analysis.confirm import request_confirmation, wants_confirmation
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.callbacks.base import TrialCallback
from tuner.engine.callbacks.weighting import LearnedWeighting, make_weighting
from tuner.engine.loop import run_trial
from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.engine.transfer import with_saved_models
from tuner.execution.heartbeat import Heartbeat
from tuner.results import EpochMetrics, TrialResult
from tuner.spec import AffinitySpec, ArmSpec, StudySpec, stored_spec
from tuner.spec.transfer import lambda_params
from tuner.workloads import Split

logger = logging.getLogger(__name__)


class _Abort(Exception):
    """Stop the run now: the worker is shutting down, or its lease was lost."""


class ConfusionRecorder(TrialCallback):
    """Records the confusion matrix (rows: true class, columns: predicted) of the best epoch on a split."""

    def __init__(self, split: Split, n_classes: int, chunk: int = 4096):
        self.split, self.n_classes, self.chunk = split, n_classes, chunk
        self.matrix: list[list[int]] | None = None

    @torch.no_grad()
    def on_train_end(self, model: MultiTaskModel) -> None:
        was_training = model.training
        model.eval()
        n = self.n_classes
        counts = torch.zeros(n * n, dtype=torch.long, device=self.split.y.device)
        for start in range(0, len(self.split), self.chunk):
            index = torch.arange(start, min(start + self.chunk, len(self.split)), device=self.split.x.device)
            part = self.split.take(index)
            predicted = model(part.x)[MAIN].argmax(-1)
            counts += torch.bincount(part.y.long() * n + predicted, minlength=n * n)
        model.train(was_training)
        self.matrix = counts.reshape(n, n).tolist()


class _Guard(TrialCallback):
    """Stops the run at the next epoch when the worker shuts down or the lease is lost."""

    def __init__(self, stop: threading.Event, lost: threading.Event):
        self.stop, self.lost = stop, lost

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        if self.lost.is_set():
            raise _Abort("lease lost")
        if self.stop.is_set():
            raise _Abort("shutting down")


def run_spec(spec: StudySpec) -> StudySpec:
    """The spec a confirmation run trains with: the study's, without sanity gate and affinity probe."""
    return spec.model_copy(update={"sanity": spec.sanity.model_copy(update={"enabled": False}),
                                   "affinity": AffinitySpec(every=0)})


def test_value(result: TrialResult, metric: str) -> float | None:
    """The test split's counterpart of the objective ``metric`` (``val_accuracy`` → test accuracy, …)."""
    if metric.startswith("target_"):  # the main task on a target domain (tuner.engine.domain)
        return result.target_test.get("accuracy" if metric.endswith("accuracy") else "loss")
    return result.test_accuracy if metric.endswith("accuracy") else result.test_loss.get(MAIN)


def execute_run(prep: PreparedStudy, kind: str, params: dict[str, Any], seed: int,
                callbacks: list[TrialCallback] | None = None) -> tuple[str, float | None, float | None,
                                                                       dict[str, Any], str]:
    """Train one run; returns ``(state, val value, test value, result document, reason)``.

    ``kind`` ``weighting`` trains with the learned weighting ``params`` describes (an ``ArmSpec``); the other
    kinds train with the fixed λ set ``params``.
    """
    spec = prep.spec
    confusion = ConfusionRecorder(prep.data.test, prep.data.n_classes)
    extra: list[TrialCallback] = [confusion]
    weighting: LearnedWeighting | None = None
    if kind == "weighting":
        weighting = make_weighting(ArmSpec.model_validate(params), list(prep.task_losses), spec.training.lr)
        extra.append(weighting)
        lambdas = spec.default_lambdas()  # unused by the loss the arm backpropagates; kept for the records
    else:
        lambdas = lambda_params(params)
    result = run_trial(prep, lambdas, seed=seed, callbacks=trial_callbacks(prep, *extra, *(callbacks or [])),
                       trunk_mode=spec.trunk_mode_of(params))
    doc = result.to_dict()
    doc["confusion"] = confusion.matrix
    doc["class_names"] = list(prep.data.class_names)
    if weighting is not None:
        doc["weighting"] = weighting.summary()
    val, test = result.value, test_value(result, spec.objective.metric)
    if val is None or val != val:
        return "failed", None, None, doc, "the objective was not finite in any epoch"
    return "complete", val, test, doc, ""


class RunWorker:
    """Claims and executes runs for one worker process; one per ``tuner.execution.worker.Worker``."""

    def __init__(self, store: Store, worker_id: str, stop: threading.Event, *, lease_timeout_s: float = 60.0,
                 heartbeat_s: float = 5.0, max_attempts: int = 3, device: str | None = None,
                 auto_confirm_every_s: float = 5.0):
        self.store, self.worker_id, self.stop = store, worker_id, stop
        self.lease_timeout_s, self.heartbeat_s, self.max_attempts = lease_timeout_s, heartbeat_s, max_attempts
        self.device, self.auto_confirm_every_s = device, auto_confirm_every_s
        self._preps: dict[tuple[int, str], PreparedStudy] = {}
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

    def _prep(self, study: StudyRecord) -> PreparedStudy:
        key = (study.id, study.spec_hash)
        if key not in self._preps:
            prep = prepare(run_spec(stored_spec(study.spec)), self.device)
            self._preps[key] = with_saved_models(prep, self.store)
        return self._preps[key]

    def execute(self, claim: RunClaim) -> None:
        """Train a claimed run and record it; give it back on shutdown; drop it if the lease was lost."""
        lost = threading.Event()
        beat = Heartbeat(lambda: self.store.heartbeat_run(claim), self.heartbeat_s, lost, f"run {claim.run_id}")
        beat.start()
        try:
            prep = self._prep(self.store.get_study(claim.study_id))
            outcome = execute_run(prep, claim.kind, claim.params, claim.seed, [_Guard(self.stop, lost)])
        except (_Abort, StoreUnavailable) as why:  # shutdown, lost lease, or a store outage: not the run's fault
            beat.done.set()
            if not lost.is_set() and self.store.release_run(claim):
                logger.info("run %s/seed %d of %s given back to the queue (%s)", claim.arm, claim.seed,
                            claim.study_name, why)
            return
        except Exception as exc:  # a bug or a broken workload: record it, don't retry the same thing forever
            beat.done.set()
            logger.exception("run %s/seed %d of %s failed", claim.arm, claim.seed, claim.study_name)
            outcome = ("failed", None, None, {"traceback": traceback.format_exc()[-4000:]},
                       f"{type(exc).__name__}: {exc}"[:2000])
        beat.done.set()
        state, val, test, doc, reason = outcome
        try:
            self.store.finish_run(claim, state, val, test, doc, reason)
            self.runs_done += 1
        except LeaseLost as exc:
            logger.warning("%s", exc)
