"""The worker loop: claim a trial from the store, run it, report it; heartbeats; SIGTERM-safe.

One worker process per device. A worker leases one trial at a time (exactly once, see ``storage``), renews the
lease from a heartbeat thread while it trains, records the sanity gate and every epoch as they happen, lets
the study's pruner stop the trial, and reports the outcome. On SIGTERM/SIGINT it stops at the next epoch
boundary and gives the running trial back to the queue (nothing half-written: the attempt's rows are removed).
A worker that dies without a word (SIGKILL, power loss) stops heartbeating; its lease expires and the next
claim requeues the trial with ``attempt + 1``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from storage import Claim, LeaseLost, Store, StoreError, StoreUnavailable, StudyRecord
from storage.retry import DEFAULT_RETRY_BUDGET_S, RetryingStore
from tuner.engine.loop import (
    EpochMetrics,
    PreparedStudy,
    TrainStep,
    TrialCallback,
    TrialPruned,
    TrialResult,
    prepare,
    run_trial,
)
from tuner.engine.model import MultiTaskModel
from tuner.engine.sanity import GateStopped, SanityResult, study_gate
from tuner.engine.threads import apply_thread_policy
from tuner.engine.transfer import save_trial_model, with_saved_models
from tuner.execution.faults import DEFAULT_OUTAGE_S, StoreOutage, fail_study, finish, give_back, is_store_fault
from tuner.execution.faults import worker_stream as worker_stream  # re-exported: part of the worker's API
from tuner.execution.heartbeat import Heartbeat
from tuner.execution.runs import RunWorker
from tuner.execution.study_watch import DELETED, STUDY_CHECK_S, StudyWatch
from tuner.search import SearchBackend, make_backend, pruning_step
from tuner.spec import StudySpec, parse_spec
from tuner.spec.objectives import trial_values
from tuner.spec.transfer import lambda_params

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")


@dataclass
class WorkerConfig:
    lease_timeout_s: float = 60.0
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


class _Abort(Exception):
    """The trial must stop now: the worker is shutting down, its lease was lost, or its study was paused; the
    trial goes back to the queue (unless the lease was lost: then it is another worker's)."""


class _StudyCancelled(_Abort):
    """The trial's study was cancelled while it trained: the trial ends as ``failed`` and is not retried."""


class _StoreReporter(TrialCallback):
    """Writes the gate and the epochs to the store, asks the pruner, and stops on shutdown, lost lease, or a
    paused or cancelled study.

    Epochs are written in batches, at most every ``flush_s`` seconds and before the trial is reported: a
    transaction per epoch would cost more than a short epoch itself. With a pruner, each epoch's objective
    goes to Optuna at once, as the pruner needs it to decide. The study's status is read at most every
    ``study_check_s`` seconds (between gate steps and epochs), so ``POST /cancel`` or ``/pause`` stops a long
    trial within about that time instead of after its last epoch.
    """

    def __init__(self, store: Store, claim: Claim, metric: str, stop: threading.Event, lost: threading.Event,
                 prunes: bool, flush_s: float = 1.0, study_check_s: float = STUDY_CHECK_S):
        self.store, self.claim, self.metric, self.stop, self.lost = store, claim, metric, stop, lost
        self.prunes, self.flush_s = prunes, flush_s
        self.study = StudyWatch(store, claim.study_id, "running", study_check_s)
        self._pending: list[tuple[int, dict]] = []
        self._flushed_at = time.monotonic()

    def flush(self) -> None:
        if self._pending:
            self.store.record_epochs(self.claim, self._pending)
            self._pending = []
        self._flushed_at = time.monotonic()

    def _check(self) -> None:
        if self.lost.is_set():
            raise _Abort("lease lost")
        if self.stop.is_set():
            raise _Abort("shutting down")
        status = self.study.status()
        if status == "cancelled":
            self.flush()  # the epochs trained so far stay readable, as a cancelled study's results do
            raise _StudyCancelled("stopped: the study was cancelled while this trial trained")
        if status in ("paused", DELETED):
            raise _Abort(f"the study was {status}")

    def should_stop(self) -> bool:
        self._check()  # raises the abort: the trial ends as it would at an epoch's end
        return False

    def on_step(self, step: TrainStep) -> None:
        self._check()  # a long epoch (a large training split) stops mid-way too; ~1 µs a step (a step: ~1 ms)

    def on_sanity_end(self, result: SanityResult) -> None:
        self._check()
        self.store.record_sanity(self.claim, result.to_dict())

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self._check()
        # A shallow copy (each field is a float or a flat dict): ``dataclasses.asdict`` took 30 µs an epoch.
        self._pending.append((metrics.epoch, {k: dict(v) if isinstance(v, dict) else v
                                              for k, v in vars(metrics).items()}))
        if time.monotonic() - self._flushed_at >= self.flush_s:
            self.flush()
        value = metrics.objective(self.metric)
        if self.prunes and value == value and self.store.report(self.claim, pruning_step(metrics.epoch), value):
            raise TrialPruned


def trial_lambdas(claim: Claim) -> dict[str, float]:
    """The λ set a claimed trial trains with (its params but a searched ``trunk_mode``)."""
    return lambda_params(claim.params)


class _ModelKeeper(TrialCallback):
    """Keeps the trained model (best epoch) of a trial whose study saves models (``artifacts.save``)."""

    def __init__(self) -> None:
        self.model: MultiTaskModel | None = None

    def on_train_end(self, model: MultiTaskModel) -> None:
        self.model = model


def trial_seed(spec: StudySpec, claim: Claim) -> int:
    """The seed of a claimed trial: the spec's seed plus the trial number (the same on every attempt)."""
    return spec.training.seed + claim.number


@dataclass
class _StudyContext:
    record: StudyRecord
    spec: StudySpec
    backend: SearchBackend
    prep: PreparedStudy | None = None


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
        self._contexts: dict[int, _StudyContext] = {}
        self._samplers: dict[int, tuple[Any, Any]] = {}
        self.trials_run = 0
        #: Confirmation and reference-arm runs (issue #7), run only when no trial can be claimed.
        self.runs = RunWorker(self.store, self.id, self.stop, lease_timeout_s=self.config.lease_timeout_s,
                              heartbeat_s=self.config.heartbeat_s, max_attempts=self.config.max_attempts,
                              device=self.config.device)

    def _context(self, study: StudyRecord) -> _StudyContext | None:
        """The study's spec, backend, sampler and pruner as built here; None (and the study failed with the
        reason) if any of them cannot be built on this worker."""
        ctx = self._contexts.get(study.id)
        if ctx is None or ctx.record.spec_hash != study.spec_hash:
            try:
                spec = parse_spec(study.spec)
                built = _StudyContext(study, spec, make_backend(spec))
                samplers = (built.backend.sampler(self.stream), built.backend.pruner())
            except Exception as exc:  # a poison spec fails its study, not the worker (issue #14)
                fail_study(self.store, study, self.id, "the study's spec, search backend or sampler cannot be built",
                           exc)
                return None
            ctx = self._contexts[study.id] = built
            self._samplers[study.id] = samplers
        return ctx

    def _active_studies(self, names: list[str] | None) -> list[StudyRecord]:
        if names is not None:
            return [s for s in (self.store.get_study(n) for n in names) if s.status in ACTIVE_STATUSES]
        return [s for status in ACTIVE_STATUSES for s in self.store.list_studies(status=status, limit=1000)]

    def claim_next(self, names: list[str] | None = None) -> tuple[_StudyContext, Claim] | None:
        """Claim one trial, taking studies in turn (fair share); None when no study has work now."""
        studies = self._active_studies(names)
        if not studies:
            return None
        start = self.trials_run % len(studies)
        for study in studies[start:] + studies[:start]:
            ctx = self._context(study)
            if ctx is None or (study.status == "queued" and not self._gate_study(ctx)):
                continue
            try:
                claim = self.claim(ctx)
            except Exception as exc:
                if is_store_fault(exc):
                    raise
                # The sampler or the λ it proposes broke (the store failed that trial): it would break again.
                fail_study(self.store, study, self.id, "the study's sampler failed", exc)
                continue
            if claim is not None:
                return ctx, claim
        return None

    def claim(self, ctx: _StudyContext) -> Claim | None:
        """Lease one trial of ``ctx``'s study (exactly once: ``Store.claim_trial``), or None if none can run now."""
        sampler, pruner = self._samplers[ctx.record.id]
        return self.store.claim_trial(
            ctx.record.id, self.id, ctx.backend.suggest, sampler=sampler, pruner=pruner,
            lease_timeout_s=self.config.lease_timeout_s, max_attempts=self.config.max_attempts,
            max_parallel=ctx.spec.search.max_parallel or None,
        )

    def prepared(self, ctx: _StudyContext) -> PreparedStudy:
        """The study's data on this worker's device, with the saved models its spec names
        (``tuner.engine.transfer``)."""
        if ctx.prep is None:
            ctx.prep = with_saved_models(prepare(ctx.spec, self.config.device), self.store)
        return ctx.prep

    def _gate_study(self, ctx: _StudyContext) -> bool:
        """Run the study-level sanity gate before the first trial of a queued study; False if the study failed.

        A broken set-up (a head cut off from the trunk, a loss that cannot fall, a workload that cannot load)
        moves the study to ``failed`` with the reason, so no trial is spent on it. Two workers may both gate a
        new study; the first transition wins and the other changes nothing.
        """
        study = ctx.record
        if not ctx.spec.sanity.enabled:
            return True
        try:
            lambdas, result = study_gate(self.prepared(ctx), ctx.spec, self._gate_should_stop(study))
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
        while not self.stop.is_set():
            try:
                if not registered:
                    self.store.register_worker(self.id, socket.gethostname(), self.config.device or "auto",
                                               os.getpid())
                    registered = True
                if not self._turn(names, exit_when_idle):
                    break
                outage.ok()
            except StoreError as exc:
                outage.failed(exc, self.stop)
        return self.trials_run

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

            run_population_claims(self, ctx, claim, size)
        else:
            self.run_claim(ctx, claim)
        return True

    def _work_may_come(self, names: list[str] | None) -> bool:
        """True while a study we serve still has queued or running trials (a lease may expire and requeue)."""
        for study in self._active_studies(names):
            counts = self.store.counts_by_state(study.id)
            if counts.get("queued", 0) or counts.get("running", 0) or sum(counts.values()) < study.n_trials:
                return True
        return False

    def run_claim(self, ctx: _StudyContext, claim: Claim) -> None:
        """Run one claimed trial and report it; release it on shutdown; drop it if the lease was lost."""
        lost = threading.Event()
        beat = Heartbeat(lambda: self.store.heartbeat(claim), self.config.heartbeat_s, lost, f"trial {claim.number}")
        beat.start()
        outcome: TrialResult | Exception
        keeper = _ModelKeeper()
        try:
            prep = self.prepared(ctx)
        except Exception as exc:
            beat.done.set()
            self._unpreparable(ctx, claim, lost, exc)
            return
        try:
            reporter = self.reporter(ctx, claim, lost)
            outcome = run_trial(prep, trial_lambdas(claim), seed=trial_seed(ctx.spec, claim),
                                callbacks=[reporter, keeper], trunk_mode=ctx.spec.trunk_mode_of(claim.params))
            reporter.flush()
        except Exception as exc:  # ``conclude`` decides: give the trial back, drop it, or record it as failed
            outcome = exc
        finally:
            beat.done.set()
        if self.conclude(claim, outcome, lost) == "complete" and keeper.model is not None:
            self.save_model(ctx, claim, keeper.model)

    def _unpreparable(self, ctx: _StudyContext, claim: Claim, lost: threading.Event, exc: Exception) -> None:
        """The study's workload cannot be prepared here: fail the study (every trial would fail alike) and give
        the trial back, so a fixed study resumes with it. A store error (loading a saved model) only gives the
        trial back."""
        if not is_store_fault(exc):
            fail_study(self.store, ctx.record, self.id, "the study's workload cannot be prepared", exc)
        self.conclude(claim, _Abort(f"the study cannot be prepared: {type(exc).__name__}"), lost)

    def save_model(self, ctx: _StudyContext, claim: Claim, model: MultiTaskModel) -> None:
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

    def reporter(self, ctx: _StudyContext, claim: Claim, lost: threading.Event) -> _StoreReporter:
        """The callback that writes ``claim``'s sanity result and epochs to the store and asks the pruner."""
        return _StoreReporter(self.store, claim, ctx.spec.objective.metric, self.stop, lost,
                              prunes=ctx.spec.search.pruner.name != "none", flush_s=self.config.epoch_flush_s)

    def conclude(self, claim: Claim, outcome: TrialResult | Exception, lost: threading.Event) -> str | None:
        """Report how a claimed trial ended (its heartbeat already stopped): a result is finished in the store;
        on shutdown (``_Abort``) or a store outage the trial goes back to the queue; a cancelled study's trial is
        finished ``failed`` (not retried); after a lost lease nothing is written; any other error fails the trial
        with its reason and traceback. Returns the state written, or None."""
        if isinstance(outcome, _StudyCancelled) and not lost.is_set():
            logger.info("trial %d of %s stopped: its study was cancelled", claim.number, claim.study_name)
            return "failed" if finish(self.store, claim, "failed", None, {}, str(outcome)) else None
        if isinstance(outcome, _Abort | StoreUnavailable):  # a store outage: not the trial's fault, run it again
            give_back(self.store, claim, lost, outcome)
            return None
        if isinstance(outcome, LeaseLost):  # our lease expired (e.g. a long stall): another worker owns the trial now
            logger.warning("%s", outcome)
            return None
        if isinstance(outcome, Exception):  # a bug or a broken workload: record it, don't retry the same thing forever
            logger.error("trial %d of %s failed", claim.number, claim.study_name, exc_info=outcome)
            reason = f"{type(outcome).__name__}: {outcome}"[:2000]
            trace = "".join(traceback.format_exception(outcome))[-4000:]
            return "failed" if finish(self.store, claim, "failed", None, {"traceback": trace}, reason) else None
        result = outcome
        state = {"complete": "complete", "pruned": "pruned", "failed_sanity": "failed_sanity"}[result.status]
        value = result.value if state != "failed_sanity" else None
        if state == "complete" and (value is None or value != value):
            state, value = "failed", None
            result.reason = "the objective was not finite in any epoch"
        values: float | list[float] | None = value
        ctx = self._contexts.get(claim.study_id)
        if state == "complete" and ctx is not None and ctx.spec.objective.multi:  # a Pareto study: every objective
            try:
                values = trial_values(ctx.spec.objective.metrics(), result)
            except ValueError as exc:
                state, values, result.reason = "failed", None, str(exc)
        written = finish(self.store, claim, state, values, result.to_dict(), result.reason)
        self.trials_run += 1
        return state if written else None


def setup_worker_process(log_level: str = "WARNING") -> None:
    """What every worker process sets up before its loop (``auxtune worker``, a Slurm array task): log lines that name
    the worker's pid (in place of the command line's), and Optuna's and Ax's INFO chatter off. Torch threads are not
    set here: ``Worker.run`` applies the one thread policy (``tuner.engine.threads``)."""
    logging.basicConfig(level=os.environ.get("AUXTUNE_LOG", log_level),
                        format="%(asctime)s %(levelname)s worker %(process)d %(name)s: %(message)s", force=True)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ax").setLevel(logging.WARNING)  # Ax logs INFO lines on import
