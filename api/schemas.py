"""What the API sends and accepts (pydantic), apart from the store's records and ORM models.

Naming follows the template: ``XCreate`` (request), ``XPublic`` (one item), ``XsPublic`` (a page:
``data`` + ``count`` = how many match in all). The study definition itself is ``tuner.spec.StudySpec``; the
Pareto documents (``ParetoSoFar``, ``ParetoPublic``) are ``tuner.analysis.pareto``'s, which the CLI prints too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


# -- trust: confirmation, affinity (tuner.analysis.confirm, tuner.analysis.affinity_report)
# -----------------------------------
class ConfirmCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seeds: int | None = Field(None, ge=2, le=1000, description="fresh seeds per arm; default: the spec's, else 10")
    top_k: int | None = Field(None, ge=1, le=20, description="how many of the best λ sets to retrain; default 1")


class StatSummary(BaseModel):
    n: int
    mean: float | None
    std: float | None = Field(description="sample standard deviation (ddof 1)")
    min: float | None
    max: float | None


class ComparisonPublic(BaseModel):
    difference: float | None = Field(description="mean(arm) − mean(reference)")
    ci_low: float | None
    ci_high: float | None
    confidence: float
    t: float | None
    df: float | None = Field(description="Welch–Satterthwaite degrees of freedom")
    p_value: float | None = Field(description="Welch's two-sided t-test")
    verdict: str | None = Field(description="better, no detectable difference or worse (in the study's direction)")
    n_arm: int
    n_reference: int


class ArmComparisonPublic(BaseModel):
    arm: str
    against: str
    test: ComparisonPublic
    val: ComparisonPublic


class ArmPublic(BaseModel):
    arm: str = Field(description="baseline, best, rank2…, or a learned weighting (uncertainty, gradnorm, dwa)")
    kind: str = Field(description="baseline, lambda or weighting")
    params: dict[str, Any] = Field(description="the λ set, or the weighting's settings")
    trial: int | None = Field(description="the search trial whose λ set this arm retrains")
    seeds: int
    counts: dict[str, int] = Field(description="runs per state")
    val: StatSummary
    test: StatSummary
    effective_lambdas: dict[str, float | None] | None = Field(
        None, description="a weighting arm's learned w_k / w_main at the end, mean over seeds")


class ConfusionPairPublic(BaseModel):
    true: str
    predicted: str
    baseline: float = Field(description="share of the true class predicted as this class, baseline")
    best: float
    change: float


class ErrorAnalysisPublic(BaseModel):
    classes: list[str]
    runs: dict[str, int]
    baseline: list[list[float]] = Field(description="test confusion counts summed over seeds (rows: true class)")
    best: list[list[float]]
    baseline_rates: list[list[float]]
    best_rates: list[list[float]]
    change: list[list[float]]
    pairs: list[ConfusionPairPublic] = Field(description="the class pairs whose confusion changed most")
    per_class: list[dict[str, Any]]
    figure: dict[str, Any] = Field(description="Plotly figure (JSON) of the change")


class ConfirmationPublic(BaseModel):
    study_id: int
    study: str
    state: str = Field(description="queued, running or complete")
    counts: dict[str, int]
    metric: str = Field(description="the test metric the verdict reads")
    val_metric: str
    direction: str
    alpha: float
    seeds: int
    verdict: str | None = Field(description="best λ vs baseline on the test metric; null until enough runs")
    arms: list[ArmPublic]
    comparisons: list[ArmComparisonPublic]
    error_analysis: ErrorAnalysisPublic | None


class ConfirmationSummaryPublic(BaseModel):
    state: str
    verdict: str | None
    metric: str
    seeds: int
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    baseline: StatSummary | None
    best: StatSummary | None


class AffinityTaskPublic(BaseModel):
    task: str
    affinity: float | None = Field(description="mean Z(task → main) over the trials that trained the task")
    std: float | None
    trials: int
    negative_in: int = Field(description="trials where it was negative")
    advice: str | None = Field(description="keep, or candidate to drop (negative affinity)")


class AffinityTrialPublic(BaseModel):
    trial: int
    state: str
    value: float | None
    lambdas: dict[str, float]
    probes: int | None
    to_main: dict[str, float | None]


class AffinityPublic(BaseModel):
    tasks: list[str]
    trials: list[AffinityTrialPublic]
    summary: list[AffinityTaskPublic]
    ranking: list[str] = Field(description="aux tasks by affinity to the main task, highest first")
    matrix: dict[str, dict[str, float | None]] = Field(description="mean Z(source → target), TAG's matrix")
    drop_candidates: list[str]
    advice: list[str]
    figure: dict[str, Any] = Field(description="Plotly heatmap (JSON) of the matrix")
