"""What the API sends and accepts (pydantic), apart from the store's records and ORM models.

Naming follows the template: ``XCreate`` (request), ``XPublic`` (one item), ``XsPublic`` (a page:
``data`` + ``count`` = how many match in all). The study definition itself is ``tuner.spec.StudySpec``; the
Pareto documents (``ParetoSoFar``, ``ParetoPublic``) are ``tuner.analysis.pareto``'s, which the CLI prints too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.trust_schemas import (  # noqa: F401  (re-exported: every schema is api.schemas')
    AblationPublic,
    AffinityPublic,
    AffinityTaskPublic,
    AffinityTrialPublic,
    ArmComparisonPublic,
    ArmPublic,
    ComparisonPublic,
    ConfirmationPublic,
    ConfirmationSummaryPublic,
    ConfirmCreate,
    ConfusionPairPublic,
    ErrorAnalysisPublic,
    EstimatePublic,
    SearchEstimatePublic,
    SequentialPublic,
    StatSummary,
)
from tuner.analysis.pareto import ParetoSoFar


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
    status_reason: str = Field("", description="why the study is in its status, e.g. the failed study-level "
                                               "sanity gate; empty when there is nothing to say")
    owner: str | None
    workload: str
    metric: str
    direction: str
    n_trials: int = Field(description="trial budget, control trials included")
    created_at: datetime
    updated_at: datetime
    pareto: ParetoSoFar | None = Field(
        None, exclude_if=lambda v: v is None,  # a single-objective study's document stays as it was
        description="multi-objective studies only: their answer is a Pareto front, not one best trial; metric and "
                    "direction are the primary objective's. The front's trials: GET …/studies/{id}/pareto")


class StudiesPublic(BaseModel):
    data: list[StudyPublic]
    count: int


class BestSoFar(BaseModel):
    trial: int
    value: float
    lambdas: dict[str, float] = Field(description="searched λ of that trial")
    primary_objective: str | None = Field(
        None, exclude_if=lambda v: v is None,  # only on a multi-objective study
        description="multi-objective studies only: this trial is the best on this metric, the primary objective, "
                    "alone; the study's answer is its Pareto front (pareto)")


class StudyDetailPublic(StudyPublic):
    spec: dict[str, Any] = Field(description="the stored spec, every default filled in")
    counts: dict[str, int] = Field(description="trials per state")
    best: BestSoFar | None
    workers_alive: int = Field(0, description="registered workers alive now (recent heartbeat and, on the API's "
                                              "host, a live process); any of them may take this study's trials")
    warning: str | None = Field(
        None, exclude_if=lambda v: v is None,  # absent while there is nothing to warn about
        description="set while the study waits (queued, running) and no live worker can take it, with what to do")


class EvaluationsPublic(BaseModel):
    """How a re-evaluated answer (``search.reevaluate``) was measured."""

    n: int = Field(description="evaluations of the best λ set, each on its own seed (value is their mean)")
    trials: list[int] = Field(description="the trials that evaluated it")
    values: list[float] = Field(description="their values, in trial order")
    se: float | None = Field(description="standard error of the mean; null with one evaluation")


class BestPublic(BaseModel):
    lambdas: dict[str, float] = Field(description="every aux task's λ, the fixed ones included")
    params: dict[str, float | int | str] | None = Field(
        None, exclude_if=lambda v: v is None,  # only a study with search.params: old documents stay the same
        description="the best trial's searched training params (search.params: lr, batch_size, …)")
    value: float = Field(description="the best trial's value; with search.reevaluate, the best mean over seeds")
    trial: int
    metric: str
    direction: str
    confirmation: ConfirmationSummaryPublic | None = Field(
        None, exclude_if=lambda v: v is None,  # absent until a confirmation exists: the document stays as it was
        description="best λ vs the baseline over fresh seeds, once a confirmation was queued")
    evaluations: EvaluationsPublic | None = Field(
        None, exclude_if=lambda v: v is None,  # only a study with search.reevaluate
        description="with search.reevaluate: the evaluations the mean is over")
    search_estimate: SearchEstimatePublic | None = Field(
        None, exclude_if=lambda v: v is None, description="what the search measured for its best λ set")
    confirmed_estimate: EstimatePublic | None = Field(
        None, exclude_if=lambda v: v is None,
        description="the best λ set retrained on the confirmation's seeds (mean, 95 % CI): beside the search's")
    trunk_mode: str | None = Field(
        None, exclude_if=lambda v: v is None,  # only a study that searches the trunk mode has one
        description="the best trial's trunk mode (freeze, finetune, finetune_lower_lr) when the study searches it")


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
    reference: str = Field(description="what a spec writes in workload.params: 'dataset:<id>' (a file inside an "
                                       "uploaded folder: 'dataset:<id>/<path>')")
    filename: str
    format: str = Field(description="csv or parquet (a table), or folder (a .zip, unpacked)")
    size_bytes: int
    sha256: str = Field(description="of the uploaded bytes; workers fetch and cache the data set by it")
    rows: int | None = Field(None, description="a table's data rows")
    columns: list[str] = Field(default_factory=list, description="a table's columns")
    label: str | None = Field(None, description="a table's class column, as uploaded")
    images: int | None = Field(None, description="a folder's image files")
    tables: list[str] | None = Field(None, description="a folder's CSV files, as 'dataset:<id>/<path>' names them")
    contents: list[str] | None = Field(None, description="a folder's top-level names (folders end with '/')")
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


class GpuPublic(BaseModel):
    """The GPU a worker was given."""

    index: int | str = Field(description="the GPU's index as its host numbers it (nvidia-smi's)")
    name: str
    memory_bytes: int = Field(description="total memory of the GPU")


class WorkerPublic(BaseModel):
    id: str
    host: str
    device: str = Field(description="where it trains, as it sees it: cuda:0, cpu")
    gpu: GpuPublic | None = Field(None, description="the GPU it was given (host index, name, memory); null on the CPU")
    device_label: str = Field("", description="one line: 'GPU 2 (NVIDIA H200, 140 GiB) as cuda:0', or 'cpu'")
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


class TokenInfo(BaseModel):
    """A token as listed: never the token itself (the store keeps only its hash)."""

    id: int
    owner: str
    is_admin: bool
    created_at: datetime


class TokensPublic(BaseModel):
    data: list[TokenInfo]
    count: int


class TokenPublic(TokenInfo):
    token: str = Field(description="the bearer token; shown only in this response, store it now")


class Health(BaseModel):
    status: str
    database: str
