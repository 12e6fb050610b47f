"""Plain, immutable records the store hands out; no ORM object ever leaves a session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import optuna

StudyStatus = Literal["queued", "running", "paused", "done", "failed", "cancelled"]
TrialState = Literal["queued", "running", "complete", "pruned", "failed", "failed_sanity"]
FinishState = Literal["complete", "pruned", "failed", "failed_sanity"]

STUDY_STATUSES: tuple[str, ...] = ("queued", "running", "paused", "done", "failed", "cancelled")
#: Only studies in these states hand out trials.
CLAIMABLE_STUDY_STATUSES: tuple[str, ...] = ("queued", "running")
TRIAL_STATES: tuple[str, ...] = ("queued", "running", "complete", "pruned", "failed", "failed_sanity")
FINISHED_TRIAL_STATES: tuple[str, ...] = ("complete", "pruned", "failed", "failed_sanity")
DIRECTIONS: tuple[str, ...] = ("minimize", "maximize")
#: States of a confirmation / reference-arm run (``auxtune_runs``): no pruning, no sanity gate of its own.
RUN_STATES: tuple[str, ...] = ("queued", "running", "complete", "failed")


#: Seconds without a heartbeat before a claimed trial or run goes back to the queue: the one default for
#: every worker, CLI option and store call.
DEFAULT_LEASE_TIMEOUT_S = 60.0

@dataclass(frozen=True)
class StudyRecord:
    """One study: its definition (``spec``, as JSON), status and budget."""

    id: int
    name: str
    spec: dict[str, Any]
    spec_hash: str
    directions: list[str]
    status: str
    optuna_study_id: int
    owner: str | None
    n_trials: int
    created_at: datetime
    updated_at: datetime
    #: Why the study is in its status (a failed study-level sanity gate says what broke); "" if nothing to say.
    status_reason: str = ""

    @property
    def direction(self) -> str:
        """The direction of the (first) objective: ``"minimize"`` or ``"maximize"``."""
        return self.directions[0]


@dataclass(frozen=True)
class TrialRecord:
    """One trial of the ledger: its λ, state and the lease it is under (if running)."""

    study_id: int
    number: int
    optuna_trial_id: int
    params: dict[str, Any]
    state: str
    attempt: int
    worker_id: str | None
    heartbeat_at: datetime | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    value: float | None
    reason: str
    result: dict[str, Any] | None


@dataclass(frozen=True)
class EpochRecord:
    """Metrics of one epoch of one attempt of a trial (train/val loss per task, main metric, …)."""

    number: int
    attempt: int
    epoch: int
    metrics: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class SanityRecord:
    """Outcome of the one-minibatch sanity gate of one attempt of a trial."""

    number: int
    attempt: int
    passed: bool
    reason: str
    figures: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class WorkerRecord:
    """A registered worker process and the trial it holds (if any)."""

    id: str
    host: str
    device: str
    pid: int
    started_at: datetime
    last_heartbeat_at: datetime
    current_study_id: int | None
    current_trial_number: int | None
    #: The GPU it trains on, as the host numbers it (``{"index", "name", "memory_bytes"}``); None: the CPU.
    gpu: dict[str, Any] | None = None


@dataclass(frozen=True)
class BestTrial:
    """The best complete trial of a study, by its direction."""

    study_id: int
    number: int
    params: dict[str, Any]
    value: float
    direction: str


@dataclass(frozen=True)
class Claim:
    """A lease on one trial, held by one worker for one attempt.

    ``trial`` is the live Optuna trial (bound to a study that uses the claimer's sampler and pruner); it is
    ``None`` on a claim rebuilt elsewhere. Every write through the store checks ``lease_id`` against the
    trial's current lease, so a claim that expired cannot write. The lease lasts ``lease_timeout_s`` after the
    last heartbeat (or epoch, sanity result or report, which renew it too).
    """

    study_id: int
    study_name: str
    number: int
    trial_row_id: int
    optuna_trial_id: int
    worker_id: str
    attempt: int
    lease_id: str
    params: dict[str, Any]
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S
    trial: optuna.trial.Trial | None = field(default=None, compare=False, repr=False)
