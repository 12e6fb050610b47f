"""The SQL study store: SQLAlchemy 2 models, Alembic migrations, and the ``Store`` repository.

Optuna's RDB schema holds the trial ledger (so every Optuna sampler and pruner, and optuna-dashboard, work on
our database unchanged); auxtune's ``auxtune_*`` tables beside it hold study specs and status, trial leases,
per-epoch metrics, sanity-gate results and workers. This package never imports ``tuner``, torch or fastapi.
"""

from storage._artifacts import ArtifactRecord
from storage._claims import SuggestFn
from storage._dashboard_queries import SanityFailure, SanitySummary, TrialPoint
from storage._datasets import CHUNK_BYTES, DatasetDeletion, DatasetRecord
from storage._pareto import ParetoSize, ParetoTrial, dominates, non_dominated
from storage._runs import RunClaim, RunPlan, RunRecord
from storage._tokens import TokenRecord
from storage.candidates import Candidate
from storage.database import DEFAULT_URL, ENV_VAR, resolve_url
from storage.errors import (
    ArtifactNotFound,
    DatasetNotFound,
    LeaseLost,
    SectionBusy,
    SectionLost,
    StoreError,
    StoreUnavailable,
    StudyConflict,
    StudyNotFound,
    TokenConflict,
    TokenNotFound,
    TrialNotFound,
)
from storage.records import (
    CLAIMABLE_STUDY_STATUSES,
    DEFAULT_LEASE_TIMEOUT_S,
    FINISHED_TRIAL_STATES,
    STUDY_STATUSES,
    TRIAL_STATES,
    BestTrial,
    Claim,
    EpochRecord,
    SanityRecord,
    StudyRecord,
    TrialRecord,
    WorkerRecord,
)
from storage.store import Store

__all__ = [
    "ArtifactNotFound",
    "ArtifactRecord",
    "CHUNK_BYTES",
    "CLAIMABLE_STUDY_STATUSES",
    "DEFAULT_LEASE_TIMEOUT_S",
    "DEFAULT_URL",
    "ENV_VAR",
    "FINISHED_TRIAL_STATES",
    "STUDY_STATUSES",
    "TRIAL_STATES",
    "BestTrial",
    "Candidate",
    "Claim",
    "DatasetDeletion",
    "DatasetNotFound",
    "DatasetRecord",
    "EpochRecord",
    "LeaseLost",
    "ParetoSize",
    "ParetoTrial",
    "RunClaim",
    "RunPlan",
    "RunRecord",
    "SanityFailure",
    "SanityRecord",
    "SanitySummary",
    "SectionBusy",
    "SectionLost",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StudyConflict",
    "StudyNotFound",
    "StudyRecord",
    "SuggestFn",
    "TokenConflict",
    "TokenNotFound",
    "TokenRecord",
    "TrialNotFound",
    "TrialPoint",
    "TrialRecord",
    "WorkerRecord",
    "dominates",
    "non_dominated",
    "resolve_url",
]
