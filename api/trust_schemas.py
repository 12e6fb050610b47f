"""The API's documents of trust: the confirmation (arms, paired comparisons, ablation, sequential looks, the
confirmed estimate) and the task affinity (``tuner.analysis.confirm``, ``tuner.analysis.affinity_report``).
``api.schemas`` re-exports every one."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ConfirmCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seeds: Annotated[int, Field(ge=2, le=1000)] | Literal["auto"] | None = Field(None, description=(
        "fresh seeds per arm, or auto (rounds until the CI excludes 0 or max_seeds); default: the spec's, else 10"))
    top_k: int | None = Field(None, ge=1, le=20, description="how many of the best λ sets to retrain; default 1")
    ablate: bool | None = Field(None, description="one more arm per searched aux task with its λ at 0; default: "
                                                  "the spec's, else false")
    max_seeds: int | None = Field(None, ge=2, le=1000,
                                  description="seeds: auto stops here; default: the spec's, else 16")
    resample_splits: bool | None = Field(None, description=(
        "redraw the data split with every seed (workloads with a split_seed param); default: the spec's, else on "
        "where the workload can"))
    test: Literal["auto", "paired", "corrected"] | None = Field(None, description=(
        "paired t-test, or corrected (Nadeau & Bengio's corrected resampled t-test, with resample_splits); "
        "default: the spec's, else auto"))


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
    df: float | None = Field(description="degrees of freedom: n − 1 paired, Welch–Satterthwaite for welch")
    p_value: float | None = Field(description="the method's two-sided test")
    verdict: str | None = Field(description="better, no detectable difference or worse (in the study's direction)")
    n_arm: int
    n_reference: int
    method: str = Field("welch", description="paired (also over redrawn splits), resampled (Nadeau–Bengio "
                                             "corrected) or welch (older runs)")
    wilcoxon_p: float | None = Field(None, description="Wilcoxon signed-rank test beside the paired t-test")
    correction: float | None = Field(None, description="resampled: n_test / n_train, added to 1/J in the variance")


class ArmComparisonPublic(BaseModel):
    arm: str
    against: str
    method: str = "welch"
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


class AblationPublic(BaseModel):
    task: str
    arm: str | None = Field(description="the arm best λ is compared with: ablate_<task>, or baseline when equal")
    verdict: str | None = Field(description="helps, no detectable effect or hurts; null until enough runs")
    lambda_: float | None = Field(alias="lambda", serialization_alias="lambda", description="the task's best λ")
    difference: float | None = Field(None, description="best λ set minus the same with this task's λ at 0")
    ci_low: float | None = None
    ci_high: float | None = None
    confidence: float | None = None
    p_value: float | None = None
    seeds: int | None = None
    method: str | None = None
    note: str | None = Field(None, exclude_if=lambda v: v is None, description="why no arm was needed")


class SequentialPublic(BaseModel):
    looks: list[int] = Field(description="seeds per arm at each look done so far")
    alphas: list[float] = Field(description="each planned look's α (O'Brien–Fleming spending; they sum to α)")
    seeds: int = Field(description="seeds analysed at the last look")
    alpha: float = Field(description="the α of the last look (its CI is at 1 − α)")
    stopped: bool
    reason: str = Field(description="decided (every deciding CI excludes 0), max_seeds, or running")
    next_seeds: int | None
    round_seeds: int
    max_seeds: int
    why: str


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
    method: str = Field("welch", description=(
        "paired (one split), paired_splits (split redrawn per seed), resampled (redrawn, Nadeau–Bengio corrected) or "
        "welch (runs stored before paired analysis)"))
    ablation: list[AblationPublic] = Field(default_factory=list, description="a verdict per searched aux task")
    sequential: SequentialPublic | None = Field(None, description="the looks, and why it stopped")


class EstimatePublic(BaseModel):
    metric: str = Field(description="the validation metric (the search's own)")
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    test_metric: str
    test_mean: float | None
    test_ci_low: float | None
    test_ci_high: float | None
    test_n: int


class SearchEstimatePublic(BaseModel):
    metric: str
    value: float = Field(description="the best trial's value: one seed, chosen as the best of many (optimistic)")
    trial: int
    seeds: int = 1


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
    confidence: float | None = None
    method: str = "welch"
    ablation: list[AblationPublic] = Field(default_factory=list)
    estimate: EstimatePublic | None = Field(None, description="the best λ set's own value over the seeds")
    why: str | None = Field(None, description="how many seeds it used and why it stopped (seeds: auto)")


class AffinityTaskPublic(BaseModel):
    task: str
    affinity: float | None = Field(description="mean Z(task → main) over the trials that trained the task")
    std: float | None
    trials: int
    negative_in: int = Field(description="trials where it was negative")
    advice: str | None = Field(description="keep, candidate to drop, or no advice (see advice_from)")
    ci_low: float | None = Field(None, description="95 % CI of the mean affinity (t-based, over its trials)")
    ci_high: float | None = None
    slice_rho: float | None = Field(None, description="rank correlation of the task's λ with the objective")
    slice_p: float | None = None
    ablation: str | None = Field(None, description="the confirmation's ablation verdict of the task, once one ran")
    advice_from: str | None = Field(None, description="ablation (its verdict decides) or affinity (clear and "
                                                      "agreeing with the λ slice, else no advice)")


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
