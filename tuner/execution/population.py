"""A worker's population: claim up to K trials of one study, train them together, report each as its own trial.

Every trial is leased with the store's ``claim_trial``, one at a time, so exactly-once claiming is the store's
as ever. The study's sampler is asked once per claim, and every claimed trial is RUNNING in Optuna before the
next ask, so the samplers that account for running trials (TPE with constant liar, GP, Ax's pending trials)
or that follow a sequence or a generation (QMC, grid, CMA-ES) propose K different λ sets; random search is
random. Each trial gets its own heartbeat (started as soon as it is claimed), its own reporter (sanity result,
epochs, pruning) and its own outcome, concluded by ``TrialWorker.conclude`` exactly as a trial run alone: the store,
``/best`` and the dashboard see K ordinary trials.

Shutdown: on SIGTERM every member's reporter stops it at its next sanity or epoch end and each trial goes back
to the queue. A killed worker stops every heartbeat, so every lease expires and each trial is requeued with
``attempt + 1``.
"""

from __future__ import annotations

import logging

from storage import Claim
from tuner.engine.population.run import Member, Outcome, population_support, run_population
from tuner.execution.trials import StudyContext, TrialLease, TrialWorker, trial_lambdas, trial_seed
from tuner.results import TrialResult

logger = logging.getLogger(__name__)


def _unsupported(trials: TrialWorker, ctx: StudyContext) -> str | None:
    """Why this study cannot train as a population here (then its trials run one by one), or None."""
    try:
        return population_support(trials.prepared(ctx))
    except Exception as exc:  # the trial run alone will fail with the full story
        return f"the study could not be prepared ({type(exc).__name__})"


def run_population_claims(trials: TrialWorker, ctx: StudyContext, first: Claim, size: int) -> None:
    """Claim up to ``size - 1`` more trials of ``first``'s study, train all together, and conclude each."""
    why = _unsupported(trials, ctx)
    if why is not None:
        logger.warning("study %s: trials run one at a time, not as a population: %s", ctx.record.name, why)
        trials.run_claim(ctx, first)
        return
    leases = [trials.lease(ctx, first)]
    try:
        while len(leases) < size and not trials.stop.is_set():
            claim = trials.claim(ctx)
            if claim is None:
                break
            leases.append(trials.lease(ctx, claim))
    except Exception:  # a store blip while claiming more: train the trials already leased
        logger.warning("study %s: claiming more trials failed; training %d", ctx.record.name, len(leases),
                       exc_info=True)
    if len(leases) == 1:  # nothing else to claim now: one member gains nothing from batching (it costs ~2x)
        leases[0].end()
        trials.run_claim(ctx, first)
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
        lease.end()
    for lease, outcome in zip(leases, outcomes, strict=True):
        trials.conclude(lease, outcome, len(leases))


def _flushed(lease: TrialLease, outcome: Outcome) -> Outcome:
    """Write the trial's pending epochs before it is concluded; a write that fails becomes its outcome."""
    if not isinstance(outcome, TrialResult):
        return outcome
    try:
        lease.reporter.flush()
    except Exception as exc:
        return exc
    return outcome
