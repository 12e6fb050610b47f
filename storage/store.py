"""``Store``: the study store behind the API, the CLI and the workers."""

from __future__ import annotations

from storage._artifacts import ArtifactOps
from storage._checkpoints import CheckpointOps
from storage._claims import ClaimOps
from storage._dashboard_queries import DashboardOps
from storage._datasets import DatasetOps
from storage._leases import LeaseOps
from storage._pareto import ParetoOps
from storage._queries import QueryOps
from storage._runs import RunOps
from storage._service import ServiceOps
from storage._studies import StudyOps
from storage._tokens import TokenOps


class Store(StudyOps, ClaimOps, LeaseOps, QueryOps, ServiceOps, TokenOps, RunOps, DashboardOps, ParetoOps,
            ArtifactOps, DatasetOps, CheckpointOps):
    """The SQL study store: auxtune's tables beside Optuna's RDB schema, in one SQLite file or PostgreSQL.

    ``Store(url)`` opens ``url`` (else ``$AUXTUNE_DB``, else ``sqlite:///./auxtune.db``), creating or upgrading
    the schema as needed; a database that cannot be opened raises ``StoreUnavailable`` with one clear line.
    One ``Store`` per process (make it after forking); it is safe to share between threads.

    Studies (``create_or_resume_study``, ``get_study``, ``list_studies``, ``set_study_status``, …), the
    exactly-once trial lease (``claim_trial``, ``heartbeat``, ``record_epoch``, ``record_sanity``, ``report``,
    ``finish_trial``, ``release_trial``), reads (``trials``, ``best_trial``, ``epochs``, ``sanity``,
    ``counts_by_state``), workers (``register_worker``, ``worker_heartbeat``, ``workers``), and for the REST
    service: studies per owner, guarded status changes and store-wide counts (``storage._service``) and API
    tokens (``create_token``, ``authenticate``, ``ensure_admin_token``); confirmation and reference-arm runs
    under their own lease (``enqueue_runs``, ``claim_run``, ``heartbeat_run``, ``finish_run``, ``runs``); the
    dashboard's whole-study reads (``dashboard_version``, ``trial_points``, ``sanity_summary``, …); the Pareto
    front of a multi-objective study (``pareto_front``, ``objective_values``); saved models of finished trials
    (``save_artifact``, ``artifact_info``, ``load_artifact``, ``artifacts``); uploaded data sets and their bytes,
    chunked by SHA-256 (``save_dataset``, ``dataset``, ``blob_chunks``, ``blob_chunk``); a running trial's last
    checkpoint (``save_checkpoint``, ``load_checkpoint``, ``drop_checkpoint``).
    """

    def __enter__(self) -> Store:
        return self
