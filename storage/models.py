"""auxtune's own tables (prefix ``auxtune_``), beside Optuna's RDB schema in the same database.

Optuna's tables hold the trial ledger that samplers and pruners read; these hold what auxtune adds: the study
spec and status, the lease of every trial, per-epoch metrics, sanity-gate outcomes and the workers. There is
no foreign key into Optuna's tables (their schema is Optuna's to migrate); ``optuna_study_id`` and
``optuna_trial_id`` are plain unique integers.

Any change here needs a migration in ``storage/migrations/versions`` (``tests/storage/test_migrations.py``
fails while models and migrations differ).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from storage.errors import StudyNotFound, TrialNotFound
from storage.records import RUN_STATES, STUDY_STATUSES, TRIAL_STATES

#: JSON everywhere; JSONB on PostgreSQL (indexable, compact).
JSONType = JSON().with_variant(JSONB(), "postgresql")
#: Stable constraint names: SQLite batch migrations can only drop or alter constraints that have a name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSONType, list[str]: JSONType}


class StudyModel(Base):
    __tablename__ = "auxtune_studies"
    __table_args__ = (CheckConstraint(_in("status", STUDY_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    spec: Mapped[dict[str, Any]]
    spec_hash: Mapped[str] = mapped_column(String(64))
    directions: Mapped[list[str]]
    status: Mapped[str] = mapped_column(String(16))
    #: Why the study is in its status, e.g. the failed study-level sanity gate; empty when there is nothing to say.
    status_reason: Mapped[str] = mapped_column(Text, server_default="", default="")
    optuna_study_id: Mapped[int] = mapped_column(Integer, unique=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    n_trials: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @classmethod
    def find_or_raise(cls, session: Session, study_id: int, *, for_update: bool = False) -> StudyModel:
        stmt = select(cls).where(cls.id == study_id)
        study = session.scalars(stmt.with_for_update() if for_update else stmt).one_or_none()
        if study is None:
            raise StudyNotFound(f"no study with id {study_id}")
        return study

    @classmethod
    def find_by_name(cls, session: Session, name: str) -> StudyModel | None:
        return session.scalars(select(cls).where(cls.name == name)).one_or_none()


class TrialModel(Base):
    """One trial number of a study and the lease it is under. ``attempt`` counts lost leases plus one."""

    __tablename__ = "auxtune_trials"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        CheckConstraint(_in("state", TRIAL_STATES), name="state"),
        CheckConstraint("attempt >= 1", name="attempt"),
        Index("ix_auxtune_trials_study_state", "study_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("auxtune_studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    optuna_trial_id: Mapped[int] = mapped_column(Integer, unique=True)
    params: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_id: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None]
    #: ``heartbeat_at`` + the holder's lease timeout: each holder says how long its own lease lasts.
    lease_expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @classmethod
    def best_first(cls, study_id: int, direction: str, *columns: Any) -> Select:
        """``columns`` of the study's complete trials with a value, best first for ``direction`` (lowest number
        on ties): ``.limit(1)`` is the best trial."""
        order = cls.value.desc() if direction == "maximize" else cls.value.asc()
        return (select(*columns).where(cls.study_id == study_id, cls.state == "complete", cls.value.is_not(None))
                .order_by(order, cls.number))

    @classmethod
    def find_or_raise(cls, session: Session, study_id: int, number: int) -> TrialModel:
        trial = session.scalars(select(cls).where(cls.study_id == study_id, cls.number == number)).one_or_none()
        if trial is None:
            raise TrialNotFound(f"study {study_id} has no trial number {number}")
        return trial


class EpochModel(Base):
    """Metrics of one epoch of one attempt: ``{"train_loss": {task: x}, "val_loss": {...}, "val_accuracy": y}``."""

    __tablename__ = "auxtune_trial_epochs"
    __table_args__ = (UniqueConstraint("trial_id", "attempt", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("auxtune_trials.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class SanityModel(Base):
    """The sanity gate's outcome for one attempt, with the figures it judged by."""

    __tablename__ = "auxtune_sanity_checks"
    __table_args__ = (UniqueConstraint("trial_id", "attempt"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("auxtune_trials.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    figures: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class WorkerModel(Base):
    __tablename__ = "auxtune_workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    device: Mapped[str] = mapped_column(String(64))
    #: The GPU it was given, as the host numbers it: ``{"index", "name", "memory_bytes"}``; None on the CPU.
    gpu: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    last_heartbeat_at: Mapped[datetime]
    current_trial_id: Mapped[int | None] = mapped_column(ForeignKey("auxtune_trials.id", ondelete="SET NULL"))


class RunModel(Base):
    """One confirmation or reference-arm run: one λ set (or weighting method) trained with one seed.

    ``kind`` is ``baseline`` (λ = 0), ``lambda`` (a searched λ set, ``trial_number`` says which trial) or
    ``weighting`` (a learned-weighting arm; ``params`` holds its settings). Runs are claimed under a lease like
    trials (``attempt`` counts claims); ``result`` holds the run's figures (curves, confusion matrix, ...).
    """

    __tablename__ = "auxtune_runs"
    __table_args__ = (
        UniqueConstraint("study_id", "arm", "seed"),
        CheckConstraint(_in("state", RUN_STATES), name="state"),
        CheckConstraint("attempt >= 0", name="attempt"),
        Index("ix_auxtune_runs_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("auxtune_studies.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    arm: Mapped[str] = mapped_column(String(64))
    trial_number: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_id: Mapped[str | None] = mapped_column(String(32))
    heartbeat_at: Mapped[datetime | None]
    lease_expires_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    val_value: Mapped[float | None] = mapped_column(Float)
    test_value: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ArtifactModel(Base):
    """The trained model of one finished trial, kept for later studies (a trunk to start from, a kd teacher).

    ``meta`` says how to rebuild the model (workload, input shape, classes, trunk width, head sizes) and
    ``state`` holds its ``state_dict`` as ``torch.save`` bytes; in the database, so a PostgreSQL store shared by
    many machines shares the models too. One row per trial; deleted with its study.
    """

    __tablename__ = "auxtune_artifacts"
    __table_args__ = (UniqueConstraint("study_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("auxtune_studies.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]]
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class BlobModel(Base):
    """The bytes of an uploaded data set, keyed by their SHA-256 and kept as ordered chunks (``BlobChunkModel``), so
    a ~50 MB upload is written and read a chunk at a time on SQLite and PostgreSQL alike. Shared by every dataset
    row with the same bytes; ``chunks`` is written last, in the transaction that wrote them."""

    __tablename__ = "auxtune_blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    chunks: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class BlobChunkModel(Base):
    __tablename__ = "auxtune_blob_chunks"

    sha256: Mapped[str] = mapped_column(ForeignKey("auxtune_blobs.sha256", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class DatasetModel(Base):
    """An uploaded data set (a table, or a folder uploaded as a zip): what ``dataset:<id>`` in a spec names.

    ``meta`` holds what the upload check found (rows and columns of a table; images and tables of a folder);
    the bytes are the blob ``sha256``, which a worker on any machine fetches and caches by that digest.
    """

    __tablename__ = "auxtune_datasets"
    __table_args__ = (Index("ix_auxtune_datasets_sha256", "sha256"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("auxtune_blobs.sha256"))
    owner: Mapped[str | None] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class CheckpointModel(Base):
    """The last checkpoint of a running trial (``torch.save`` bytes of its model, optimiser, RNG, …), so a requeued
    attempt resumes from it (``tuner.engine.checkpoint``); one row per trial, dropped when the trial ends."""

    __tablename__ = "auxtune_checkpoints"
    __table_args__ = (UniqueConstraint("trial_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("auxtune_trials.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
