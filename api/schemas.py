"""What the API sends and accepts (pydantic), apart from the store's records and ORM models.

Naming follows the template: ``XCreate`` (request), ``XPublic`` (one item), ``XsPublic`` (a page:
``data`` + ``count`` = how many match in all). The study definition itself is ``tuner.spec.StudySpec``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where the problem is: ['body', 'search', 'n_trials'], ['path', …]")
    msg: str = Field(description="what is wrong and how to fix it")
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorItem]


# -- studies -------------------------------------------------------------------------------------------------
class StudyPublic(BaseModel):
    id: int
    name: str
    status: str = Field(description="queued, running, paused, done, failed or cancelled")
    owner: str | None
    workload: str
    metric: str
    direction: str
    n_trials: int = Field(description="trial budget, control trials included")
    created_at: datetime
    updated_at: datetime


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int


class BestSoFar(BaseModel):
    trial: int
    value: float
    lambdas: dict[str, float] = Field(description="searched λ of that trial")


class StudyDetailPublic(StudyPublic):
    spec: dict[str, Any] = Field(description="the stored spec, every default filled in")
    counts: dict[str, int] = Field(description="trials per state")
    best: BestSoFar | None


class BestPublic(BaseModel):
    lambdas: dict[str, float] = Field(description="every aux task's λ, the fixed ones included")
    value: float
    trial: int
    metric: str
    direction: str


# -- trials --------------------------------------------------------------------------------------------------
class SanityPublic(BaseModel):
    passed: bool
    reason: str
    attempt: int
    figures: dict[str, Any]


class TrialPublic(BaseModel):
    number: int
    state: str
    lambdas: dict[str, Any]
    value: float | None
    attempt: int
    worker: str | None
    reason: str
    sanity: SanityPublic | None
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    seconds: float | None = Field(description="finished_at − started_at of the current attempt")


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int


class EpochPublic(BaseModel):
    epoch: int
    metrics: dict[str, Any]


class TrialDetailPublic(TrialPublic):
    result: dict[str, Any] | None
    epochs: list[EpochPublic]
    curves: dict[str, dict[str, list[float | None]]] = Field(
        description="per-task series by epoch: {'train_loss': {'main': [...], 'helpful': [...]}, ...}")
    series: dict[str, list[float | None]] = Field(
        description="scalar series by epoch: {'val_accuracy': [...], 'seconds': [...]}")


# -- datasets ------------------------------------------------------------------------------------------------
class DatasetPublic(BaseModel):
    id: str
    reference: str = Field(description="what a spec writes in workload.params: 'dataset:<id>'")
    filename: str
    format: str
    size_bytes: int
    sha256: str
    rows: int
    columns: list[str]
    label: str
    owner: str | None
    created_at: datetime


# -- catalog, workers, tokens, health ------------------------------------------------------------------------
class TaskPublic(BaseModel):
    kind: str
    dim: int
    losses: list[str]
    description: str


class WorkloadPublic(BaseModel):
    name: str
    description: str
    params: dict[str, Any] = Field(description="JSON schema of workload.params")
    path_params: list[str] = Field(description="params that name data files: give 'dataset:<id>'")
    tasks: dict[str, TaskPublic] = Field(description="aux tasks offered; empty when they come from your data")


class WorkloadsPublic(BaseModel):
    data: list[WorkloadPublic]
    count: int


class WorkerPublic(BaseModel):
    id: str
    host: str
    device: str
    pid: int
    alive: bool
    started_at: datetime
    last_heartbeat_at: datetime
    current_study_id: int | None
    current_trial: int | None


class WorkersPublic(BaseModel):
    data: list[WorkerPublic]
    count: int


class TokenCreate(BaseModel):
    owner: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@\-]*$")
    is_admin: bool = False


class TokenPublic(BaseModel):
    id: int
    owner: str
    is_admin: bool
    created_at: datetime
    token: str = Field(description="the bearer token; shown only in this response, store it now")


class Health(BaseModel):
    status: str
    database: str
