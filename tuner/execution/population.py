"""A worker's population: claim up to K trials of one study, train them together, report each as its own trial.

Every trial is leased with the store's ``claim_trial``, one at a time, so exactly-once claiming is the store's
as ever. The study's sampler is asked once per claim, and every claimed trial is RUNNING in Optuna before the
next ask, so the samplers that account for running trials (TPE with constant liar, GP, Ax's pending trials)
or that follow a sequence or a generation (QMC, grid, CMA-ES) propose K different λ sets; random search is
random. Each trial gets its own heartbeat (started as soon as it is claimed), its own reporter (sanity result,
epochs, pruning) and its own outcome, reported by ``Worker.conclude`` exactly as a trial run alone: the store,
``/best`` and the dashboard see K ordinary trials.

Shutdown: on SIGTERM every member's reporter stops it at its next sanity or epoch end and each trial goes back
to the queue. A killed worker stops every heartbeat, so every lease expires and each trial is requeued with
``attempt + 1``.
"""

from __future__ import annotations

import logging
import threading

from storage import Claim
from tuner.engine.population.run import Member, Outcome, population_support, run_population
from tuner.execution.heartbeat import Heartbeat
from tuner.execution.worker import Worker, _StoreReporter, _StudyContext, trial_lambdas, trial_seed
from tuner.results import TrialResult

logger = logging.getLogger(__name__)


class _Lease:
    """One claimed trial of the population: the claim, its heartbeat and the flag the heartbeat raises."""

    def __init__(self, worker: Worker, ctx: _StudyContext, claim: Claim):
        self.claim = claim
        self.lost = threading.Event()
        self.beat = Heartbeat(lambda: worker.store.heartbeat(claim), worker.config.heartbeat_s, self.lost,
                              f"trial {claim.number}")
        self.beat.start()
        self.reporter: _StoreReporter = worker.reporter(ctx, claim, self.lost)


def _unsupported(worker: Worker, ctx: _StudyContext) -> str | None:
    """Why this study cannot train as a population here (then its trials run one by one), or None."""
    try:
        return population_support(worker.prepared(ctx))
    except Exception as exc:  # the trial run alone will fail with the full story
        return f"the study could not be prepared ({type(exc).__name__})"


def run_population_claims(worker: Worker, ctx: _StudyContext, first: Claim, size: int) -> None:
    """Claim up to ``size - 1`` more trials of ``first``'s study, train all together, and conclude each."""
    why = _unsupported(worker, ctx)
    if why is not None:
        logger.warning("study %s: trials run one at a time, not as a population: %s", ctx.record.name, why)
        worker.run_claim(ctx, first)
        return
    leases = [_Lease(worker, ctx, first)]
    try:
        while len(leases) < size and not worker.stop.is_set():
            claim = worker.claim(ctx)
            if claim is None:
                break
            leases.append(_Lease(worker, ctx, claim))
    except Exception:  # a store blip while claiming more: train the trials already leased
        logger.warning("study %s: claiming more trials failed; training %d", ctx.record.name, len(leases),
                       exc_info=True)
    if len(leases) == 1:  # nothing else to claim now: one member gains nothing from batching (it costs ~2x)
        leases[0].beat.done.set()
        worker.run_claim(ctx, first)
        return
    logger.info("study %s: training trials %s as one population", ctx.record.name,
                [lease.claim.number for lease in leases])
    try:
        assert ctx.prep is not None  # prepared by _unsupported
        members = [Member(trial_lambdas(lease.claim), trial_seed(ctx.spec, lease.claim), [lease.reporter])
                   for lease in leases]
        outcomes: list[Outcome] = run_population(ctx.prep, members)
    except Exception as exc:  # the population as a whole broke: every trial ends with the error
        outcomes = [exc] * len(leases)
    outcomes = [_flushed(lease, outcome) for lease, outcome in zip(leases, outcomes, strict=True)]
    for lease in leases:
        lease.beat.done.set()
    for lease, outcome in zip(leases, outcomes, strict=True):
        worker.conclude(lease.claim, outcome, lease.lost)


def _flushed(lease: _Lease, outcome: Outcome) -> Outcome:
    """Write the trial's pending epochs before it is concluded; a write that fails becomes its outcome."""
    if not isinstance(outcome, TrialResult):
        return outcome
    try:
        lease.reporter.flush()
    except Exception as exc:
        return exc
    return outcome
