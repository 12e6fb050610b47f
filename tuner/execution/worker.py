"""The worker loop: claim a trial from the store, run it, report it; heartbeats; SIGTERM-safe.

One worker process per device. A worker leases one trial at a time (exactly once, see ``storage``), renews the
lease from a heartbeat thread while it trains, records the sanity gate and every epoch as they happen, lets
the study's pruner stop the trial, and reports the outcome. On SIGTERM/SIGINT it stops at the next epoch
boundary and gives the running trial back to the queue (nothing half-written: the attempt's rows are removed).
A worker that dies without a word (SIGKILL, power loss) stops heartbeating; its lease expires and the next
claim requeues the trial with ``attempt + 1``.

This module picks the work: a study in turn (fair share), its study-level gate, then a trial of it (alone or as a
population) or, when no trial waits, a confirmation run. Holding and concluding them is ``tuner.execution.trials``
and ``tuner.execution.runs``, both on the one lease skeleton (``tuner.execution.lease``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from storage import DEFAULT_LEASE_TIMEOUT_S, Claim, DatasetNotFound, Store, StoreError, StudyRecord
from storage.retry import DEFAULT_RETRY_BUDGET_S, RetryingStore
from tuner.engine.sanity import GateStopped, study_gate
from tuner.engine.threads import apply_thread_policy
from tuner.execution.datasets import DatasetCache
from tuner.execution.faults import DEFAULT_OUTAGE_S, StoreOutage, fail_study, is_store_fault, worker_stream
from tuner.execution.placement import worker_device
from tuner.execution.runs import RunWorker
from tuner.execution.study_watch import StudyWatch
from tuner.execution.trials import StudyContext, TrialWorker
from tuner.search import make_backend
from tuner.spec import stored_spec

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")


@dataclass
class WorkerConfig:
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S
    heartbeat_s: float = 5.0
    max_attempts: int = 3
    poll_s: float = 1.0
    device: str | None = None
    #: Trials of one study to claim and train together (``tuner.engine.population.run``); None: the spec's
    # population.size.
    population: int | None = None
    #: Seconds between writes of a trial's epochs (a transaction per epoch costs more than a short epoch).
    epoch_flush_s: float = 1.0
    #: How long one store call is retried through an outage (a dropped connection) before it counts as failed.
    store_retry_s: float = DEFAULT_RETRY_BUDGET_S
    #: How long the store may fail without a break before the worker gives up (``tuner.execution.faults``).
    store_outage_s: float = DEFAULT_OUTAGE_S
    #: Torch CPU threads; None: ``$AUXTUNE_THREADS``, else 1 (``tuner.engine.threads``, the one policy of every worker).
    threads: int | None = None
    #: Where uploaded data sets are cached, fetched from the store by sha256; None: ``default_cache_dir()``.
    cache_dir: Path | None = None


class Worker:
    """Pulls trials of the given studies (or of every active study, in turn) until there is no more work."""

    def __init__(self, store: Store, worker_id: str | None = None, config: WorkerConfig | None = None,
                 stop: threading.Event | None = None, stream: int | None = 0):
        self.config = config or WorkerConfig()
        #: Every call retried through a transient outage (``storage.retry``): a dropped connection costs a retry.
        self.store = cast(Store, RetryingStore(store, self.config.store_retry_s))
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.stop = stop or threading.Event()
        #: The sampler's seed stream; None: from the worker's id, as ``auxtune worker`` does without ``--stream``
        #: (two by hand must not propose the same λ). 0, a lone worker in a process, reproduces a seeded study.
        self.stream = worker_stream(self.id) if stream is None else stream
        self._contexts: dict[int, StudyContext] = {}
        c = self.config
        #: Uploaded data sets a study's spec names, fetched from the store: no filesystem shared with the API.
        self.datasets = DatasetCache(self.store, c.cache_dir)
        #: The trials of the studies served (``tuner.execution.trials``), alone or as a population.
        self.trials = TrialWorker(self.store, self.id, self.stop, lease_timeout_s=c.lease_timeout_s,
                                  heartbeat_s=c.heartbeat_s, max_attempts=c.max_attempts, device=c.device,
                                  epoch_flush_s=c.epoch_flush_s)
        #: Confirmation and reference-arm runs (issue #7), run only when no trial can be claimed.
        self.runs = RunWorker(self.store, self.id, self.stop, lease_timeout_s=c.lease_timeout_s,
                              heartbeat_s=c.heartbeat_s, max_attempts=c.max_attempts, device=c.device,
                              datasets=self.datasets)

    def _context(self, study: StudyRecord) -> StudyContext | None:
        """The study's spec, backend, sampler and pruner as built here; None (and the study failed with the
        reason) if any of them cannot be built on this worker."""
        ctx = self._contexts.get(study.id)
        if ctx is None or ctx.record.spec_hash != study.spec_hash:
            try:
                spec = stored_spec(self.datasets.materialize(study.spec), to_run=True)
                built = StudyContext(study, spec, make_backend(spec))
                built.sampler, built.pruner = built.backend.sampler(self.stream), built.backend.pruner()
            except StoreError as exc:
                if not isinstance(exc, DatasetNotFound):
                    raise  # an outage while fetching a data set is not the study's fault: the loop tries again
                fail_study(self.store, study, self.id, "a data set of the study's spec is not in the store", exc)
                return None
            except Exception as exc:  # a poison spec fails its study, not the worker (issue #14)
                fail_study(self.store, study, self.id, "the study's spec, search backend or sampler cannot be built",
                           exc)
                return None
            ctx = self._contexts[study.id] = built
        return ctx

    def _active_studies(self, names: list[str] | None) -> list[StudyRecord]:
        if names is not None:
            return [s for s in (self.store.get_study(n) for n in names) if s.status in ACTIVE_STATUSES]
        return [s for status in ACTIVE_STATUSES for s in self.store.list_studies(status=status, limit=1000)]

    def claim_next(self, names: list[str] | None = None) -> tuple[StudyContext, Claim] | None:
        """Claim one trial, taking studies in turn (fair share); None when no study has work now."""
        studies = self._active_studies(names)
        if not studies:
            return None
        start = self.trials.trials_run % len(studies)
        for study in studies[start:] + studies[:start]:
            ctx = self._context(study)
            if ctx is None or (study.status == "queued" and not self._gate_study(ctx)):
                continue
            try:
                claim = self.trials.claim(ctx)
            except Exception as exc:
                if is_store_fault(exc):
                    raise
                # The sampler or the λ it proposes broke (the store failed that trial): it would break again.
                fail_study(self.store, study, self.id, "the study's sampler failed", exc)
                continue
            if claim is not None:
                return ctx, claim
        return None

    def _gate_study(self, ctx: StudyContext) -> bool:
        """Run the study-level sanity gate before the first trial of a queued study; False if the study failed.

        A broken set-up (a head cut off from the trunk, a loss that cannot fall, a workload that cannot load)
        moves the study to ``failed`` with the reason, so no trial is spent on it. Two workers may both gate a
        new study; the first transition wins and the other changes nothing.
        """
        study = ctx.record
        if not ctx.spec.sanity.enabled:
            return True
        try:
            lambdas, result = study_gate(self.trials.prepared(ctx), ctx.spec, self._gate_should_stop(study))
        except GateStopped:  # SIGTERM, or the study left ``queued`` (paused, cancelled): no verdict, no change
            logger.info("study %s: the study-level sanity gate was stopped before it decided", study.name)
            return False
        except StoreError:
            raise  # a store blip (loading a saved model) is not the study's fault: the loop tries again
        except Exception as exc:  # a workload that cannot even be built fails the study, not each trial
            logger.exception("study %s: preparing the study-level sanity gate failed", study.name)
            reason = f"study-level sanity gate: the workload could not be prepared: {type(exc).__name__}: {exc}"
            self.store.transition_study(study.id, "failed", ("queued",), reason=reason[:4000])
            return False
        if result.passed:
            self.store.transition_study(study.id, "running", ("queued",))
            return True
        reason = f"study-level sanity gate failed at λ={lambdas}: {result.reason}"
        logger.warning("study %s: %s", study.name, reason)
        self.store.transition_study(study.id, "failed", ("queued",), reason=reason[:4000])
        return False

    def _gate_should_stop(self, study: StudyRecord) -> Callable[[], bool]:
        """The study gate's stop check: SIGTERM, or the study no longer ``queued`` (paused, cancelled)."""
        watch = StudyWatch(self.store, study.id, "queued")
        return lambda: self.stop.is_set() or watch.status() != "queued"

    def run(self, names: list[str] | None = None, exit_when_idle: bool = True) -> int:
        """Work until stopped, or (``exit_when_idle``) until the given studies have nothing left to run.

        A store error in a turn of the loop (each call already retried) is waited out with backoff; the
        ``StoreError`` is raised only once the store has failed for ``config.store_outage_s`` in a row.
        """
        apply_thread_policy(self.config.threads)  # every kind of worker comes through here
        outage = StoreOutage(self.config.store_outage_s)
        registered = False
        device, gpu = worker_device(self.config.device)  # the GPU it was given, as the host numbers it, or the CPU
        while not self.stop.is_set():
            try:
                if not registered:
                    self.store.register_worker(self.id, socket.gethostname(), device, os.getpid(), gpu)
                    registered = True
                if not self._turn(names, exit_when_idle):
                    break
                outage.ok()
            except StoreError as exc:
                outage.failed(exc, self.stop)
        return self.trials.trials_run

    def _turn(self, names: list[str] | None, exit_when_idle: bool) -> bool:
        """One turn of the loop: run a trial, or a run, or wait for work; False when there is none to wait for."""
        got = self.claim_next(names)
        if got is None:
            if self.runs.run_next(names):  # hook: confirmation / reference-arm runs (tuner.execution.runs)
                return True
            if exit_when_idle and not self._work_may_come(names):
                return False
            self.stop.wait(self.config.poll_s)
            self.store.worker_heartbeat(self.id)
            return True
        ctx, claim = got
        size = self.config.population or ctx.spec.population.size
        if size > 1:
            from tuner.execution.population import run_population_claims  # torch.func path, loaded when used

            run_population_claims(self.trials, ctx, claim, size)
        else:
            self.trials.run_claim(ctx, claim)
        return True

    def _work_may_come(self, names: list[str] | None) -> bool:
        """True while a study we serve still has queued or running trials (a lease may expire and requeue)."""
        for study in self._active_studies(names):
            counts = self.store.counts_by_state(study.id)
            if counts.get("queued", 0) or counts.get("running", 0) or sum(counts.values()) < study.n_trials:
                return True
        return False


def setup_worker_process(log_level: str = "WARNING") -> None:
    """What every worker process sets up before its loop (``auxtune worker``, a Slurm array task): log lines that name
    the worker's pid (in place of the command line's), and Optuna's and Ax's INFO chatter off. Torch threads are not
    set here: ``Worker.run`` applies the one thread policy (``tuner.engine.threads``)."""
    logging.basicConfig(level=os.environ.get("AUXTUNE_LOG", log_level),
                        format="%(asctime)s %(levelname)s worker %(process)d %(name)s: %(message)s", force=True)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ax").setLevel(logging.WARNING)  # Ax logs INFO lines on import
