"""The blocks of a study spec: one pydantic model per section (λ bounds, search, training, objective, …).

Each block bounds its numbers (``tuner.spec.limits``) and names what is allowed; ``tuner.spec.study.StudySpec``
puts them together.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from tuner.spec import limits
from tuner.spec.objectives import EPOCH_METRICS, ObjectiveTerm
from tuner.spec.transfer import check_trial_ref

LossName = Literal["ce", "bce", "mse", "kd", "mmd"]
LOSSES: tuple[str, ...] = ("ce", "bce", "mse", "kd", "mmd")
ALGORITHMS: tuple[str, ...] = ("tpe", "gp", "cmaes", "qmc", "random", "grid", "ax", "nsga2", "nsga3")
PRUNERS: tuple[str, ...] = ("none", "median", "hyperband", "wilcoxon")
#: The metrics a primary objective may name, with their directions: those measured every epoch.
METRIC_DIRECTIONS: dict[str, str] = EPOCH_METRICS


class _Strict(BaseModel):
    """Base of every block: unknown fields refused, no NaN or infinity, fields added later kept out of documents.

    A field added after the first release goes in its block's ``added_later``: the stored document leaves it out
    while it is at its default, so a study stored before the field existed keeps the same spec (and digest) and
    resumes instead of conflicting.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    added_later: ClassVar[tuple[str, ...]] = ()
    #: Fields whose default changed after studies were stored with the old one written out: field → old default.
    #: A resubmitted spec that leaves such a field out takes the stored value when it is the old default
    #: (``tuner.spec.study.keep_stored_defaults``), so ``auxtune run spec.yaml`` resumes instead of conflicting.
    changed_defaults: ClassVar[dict[str, Any]] = {}

    @model_serializer(mode="wrap")
    def _omit_added_at_default(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.added_later:
            if getattr(self, name) == type(self).model_fields[name].get_default(call_default_factory=True):
                data.pop(name, None)
        return data


class LambdaSpec(_Strict):
    """Bounds of one λ: searched in ``[low, high]`` (log scale if ``log``), or ``fixed``."""

    low: float = Field(0.0, ge=0.0, le=limits.MAX_LAMBDA, description="lower bound of λ, ≥ 0")
    high: float = Field(2.0, ge=0.0, le=limits.MAX_LAMBDA, description="upper bound of λ, ≥ low")
    log: bool = Field(False, description="search on a log scale (needs low > 0)")
    fixed: float | None = Field(None, ge=0.0, le=limits.MAX_LAMBDA, description="a constant λ, not searched")

    @model_validator(mode="after")
    def _check_bounds(self) -> LambdaSpec:
        if self.fixed is not None:
            return self
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be ≤ high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0; set low to e.g. 1e-3 or drop log")
        return self

    @property
    def searched(self) -> bool:
        return self.fixed is None and self.low < self.high

    def default(self) -> float:
        """The λ used when nothing is searched (``validate``, study-level gate): 1 clipped into bounds."""
        if self.fixed is not None:
            return self.fixed
        return min(max(1.0, self.low), self.high)


class AuxTaskSpec(_Strict):
    added_later = ("teacher",)
    name: str = Field(min_length=1, max_length=64, description="letters, digits, _ and -; not main or total")
    loss: LossName
    lambda_: LambdaSpec = Field(default_factory=LambdaSpec, alias="lambda")
    temperature: limits.Temperature = Field(2.0, description="softmax temperature of a kd loss")
    teacher: str | None = Field(None, description=(
        "kd only: distil the saved model of trial <study>/<n> of this store (its main-task predictions, softened "
        "at temperature) into the student's main head; the task's name is then free"))

    _check_name = field_validator("name")(limits.check_task_name)

    @field_validator("teacher")
    @classmethod
    def _check_teacher(cls, teacher: str | None, info: ValidationInfo) -> str | None:
        loss = info.data.get("loss")
        if teacher is not None and loss is not None and loss != "kd":
            raise ValueError(f"teacher is for a kd task; set loss: kd or drop teacher (loss is {loss!r})")
        return check_trial_ref(teacher)



class WorkloadSpec(_Strict):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(_Strict):
    changed_defaults = {"warmup_epochs": 2}

    name: Literal["none", "median", "hyperband", "wilcoxon"] = "none"
    warmup_epochs: int | None = Field(None, ge=0, le=limits.MAX_EPOCHS, description=(
        "epochs before a trial may be pruned; default: until the study's validation curves have left their start, "
        "from 2 epochs to half of training.epochs (tuner.search.warmup_range)"))


class ReevaluateSpec(_Strict):
    """Noise-aware selection (``tuner.search.reevaluation_due``): the leading λ sets are trained again on more seeds
    during the search, and the study's answer is the best mean."""

    top_k: int = Field(3, ge=1, le=limits.MAX_REEVALUATE_TOP_K, description="leading λ sets to re-evaluate")
    seeds: int = Field(3, ge=2, le=limits.MAX_REEVALUATE_SEEDS,
                       description="evaluations of each leading λ set, the first included (each on its own seed)")


class ParamRange(_Strict):
    """One searched training or model param (``search.params.<name>``): a range ``low``..``high`` (log scale if
    ``log``; integers for an integer field) or a list of ``choices``."""

    low: float | None = Field(None, ge=-limits.MAX_PARAM_VALUE, le=limits.MAX_PARAM_VALUE)
    high: float | None = Field(None, ge=-limits.MAX_PARAM_VALUE, le=limits.MAX_PARAM_VALUE)
    log: bool = Field(False, description="search on a log scale (needs low > 0)")
    choices: list[int | float | str] | None = Field(None, min_length=1, max_length=limits.MAX_PARAM_CHOICES)

    @model_validator(mode="after")
    def _check_shape(self) -> ParamRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("give either choices or low/high (and log), not both")
            if len(set(map(str, self.choices))) != len(self.choices):
                raise ValueError("choices are listed more than once; list each once")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high (a range) or choices (a list)")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be ≤ high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0; set low to e.g. 1e-4 or drop log")
        return self


class SearchSpec(_Strict):
    added_later = ("reevaluate", "params")
    changed_defaults = {"algorithm": "tpe"}

    algorithm: Literal["auto", "tpe", "gp", "cmaes", "qmc", "random", "grid", "ax", "nsga2", "nsga3"] = Field(
        "auto", description="'auto' (the default): the measured choice, now gp for a small single-objective "
                            "search, tpe otherwise (tuner.spec.study.default_algorithm); stored as the algorithm "
                            "it resolved to")
    n_trials: int = Field(30, gt=0, le=limits.MAX_TRIALS)
    seed: limits.Seed = 0
    controls: bool = Field(True, description="enqueue λ=0 (baseline) and λ=1 (equal weights) first")
    grid_points: int = Field(3, ge=2, le=limits.MAX_GRID_SIZE, description="values per λ for the grid algorithm")
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    max_parallel: int = Field(0, ge=0, le=limits.MAX_PARALLEL,
                              description="most trials running at once; 0 = no limit")
    reevaluate: ReevaluateSpec | None = Field(None, description=(
        "re-run the leading λ sets on more seeds during the search (counted in n_trials) and rank by the mean"))
    params: dict[Annotated[str, Field(min_length=1, max_length=64)], ParamRange] = Field(
        default_factory=dict, max_length=limits.MAX_SEARCH_PARAMS, description=(
        "training params searched with the λ: lr, weight_decay, batch_size, hidden, or a workload's model_params"))


class LoaderSpec(_Strict):
    """How a workload's data-set splits are read (``tuner.engine.batches``); in-memory tensor splits ignore it."""

    num_workers: int = Field(0, ge=0, le=limits.MAX_LOADER_WORKERS,
                             description="DataLoader worker processes; 0 reads in the training process")
    pin_memory: bool = Field(True, description="page-locked batches for a faster copy to the GPU (CUDA only)")
    prefetch_factor: int = Field(2, ge=1, le=limits.MAX_PREFETCH_FACTOR,
                                 description="batches each worker reads ahead (with num_workers > 0)")
    persistent_workers: bool = Field(True, description="keep the workers alive between epochs and trials")


class SchedulerSpec(_Strict):
    """The built-in optimiser's learning-rate schedule, stepped once per epoch (``tuner.engine.controls``); a
    workload's own ``configure_optimizers`` brings its own instead. Written as a name (``cosine``) or a mapping."""

    name: Literal["none", "cosine", "step", "onecycle"] = "none"
    warmup_epochs: int = Field(0, ge=0, le=limits.MAX_EPOCHS,
                               description="epochs of linear warm-up from lr/25 to lr (onecycle: default 30%)")
    step_size: int = Field(10, gt=0, le=limits.MAX_EPOCHS, description="step: epochs between two lr drops")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step: factor of each drop")


class TrainingSpec(_Strict):
    added_later = ("loader", "deterministic", "scheduler", "precision", "grad_clip", "accumulate",
                   "checkpoint_every")

    epochs: int = Field(20, gt=0, le=limits.MAX_EPOCHS)
    batch_size: int = Field(64, gt=0, le=limits.MAX_BATCH_SIZE)
    lr: limits.LearningRate = 1e-3
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0.0, le=limits.MAX_WEIGHT_DECAY)
    patience: int | None = Field(None, gt=0, le=limits.MAX_EPOCHS,
                                 description="early stopping: epochs without improvement")
    seed: limits.Seed = 0
    device: str = Field("auto", description="'auto' (cuda when present), 'cpu', 'cuda', 'cuda:N'")
    hidden: int = Field(64, gt=0, le=limits.MAX_HIDDEN, description="width of the shared trunk")
    loader: LoaderSpec = Field(default_factory=LoaderSpec, description="how data-set splits are read")
    deterministic: bool = Field(False, description="deterministic kernels: torch.use_deterministic_algorithms and "
                                                   "cudnn.deterministic on, cudnn.benchmark off (slower on a GPU)")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec, description="lr schedule, per epoch")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast precision: bf16 on CPU or GPU; fp16 (with a grad scaler) on CUDA only")
    grad_clip: float | None = Field(None, gt=0.0, le=limits.MAX_GRAD_CLIP,
                                    description="clip the gradient's total norm to this (None: no clipping)")
    accumulate: int = Field(1, ge=1, le=limits.MAX_ACCUMULATE,
                            description="minibatches whose gradients add up to one optimiser step")
    checkpoint_every: int | Literal["auto"] = Field(
        "auto", description=("checkpoint a trial every this many epochs so a requeued attempt resumes; 0: never; "
                             "auto: about every minute once an epoch has been timed"))

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("checkpoint_every")
    @classmethod
    def _check_checkpoint_every(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 0 <= v <= limits.MAX_EPOCHS:
            raise ValueError(f"checkpoint_every must be 'auto' or an epoch count in [0, {limits.MAX_EPOCHS}]")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


class SanitySpec(_Strict):
    """The one-minibatch check run before every trial (see ``tuner.engine.sanity``)."""

    enabled: bool = True
    max_steps: int = Field(40, gt=0, le=limits.MAX_GATE_STEPS,
                           description="most optimisation steps on the one minibatch")
    batch_size: int = Field(32, gt=0, le=limits.MAX_BATCH_SIZE)
    lr: limits.LearningRate | None = Field(None, description="learning rate of the gate; default: training.lr × 3")
    min_loss_drop: float = Field(0.5, gt=0.0, lt=1.0, description="fraction the total loss must fall by")
    min_accuracy: float = Field(0.9, gt=0.0, le=1.0, description="main-task accuracy to reach on the batch")


class ObjectiveSpec(_Strict):
    """The primary objective (``metric``), and with ``also`` more: a multi-objective study (``tuner.spec.objectives``).

    Written as a mapping, or as a list of ``{metric, direction}`` whose first item is the primary objective.
    """

    added_later = ("also",)

    metric: Literal["val_accuracy", "val_loss", "target_val_accuracy", "target_val_loss"] = "val_accuracy"
    direction: Literal["maximize", "minimize"] | None = None
    also: list[ObjectiveTerm] = Field(default_factory=list, description="more objectives: a Pareto study")

    @model_validator(mode="after")
    def _check_direction(self) -> ObjectiveSpec:
        natural = METRIC_DIRECTIONS[self.metric]
        if self.direction is None:
            self.direction = natural  # type: ignore[assignment]
        elif self.direction != natural:
            raise ValueError(f"{self.metric} is to be {natural}d; set direction: {natural}")
        metrics = self.metrics()
        dupes = sorted({m for m in metrics if metrics.count(m) > 1})
        if dupes:
            raise ValueError(f"metric(s) {dupes} listed more than once; list each objective once")
        return self


    def metrics(self) -> list[str]:
        """Every objective's metric, the primary first."""
        return [self.metric, *(t.metric for t in self.also)]

    def directions(self) -> list[str]:
        """Every objective's direction, in the order of ``metrics``."""
        return [str(self.direction), *(str(t.direction) for t in self.also)]

    @property
    def multi(self) -> bool:
        return bool(self.also)


class AffinitySpec(_Strict):
    """The task-affinity probe (TAG, Fifty et al. 2021) run inside every trial; see
    ``tuner.engine.callbacks.affinity``."""

    every: int = Field(25, ge=0, le=limits.MAX_AFFINITY_EVERY,
                       description="probe every this many training steps; 0 turns the probe off")
    lr: limits.LearningRate | None = Field(None, description="step size of the lookahead; default: training.lr")


class ConfirmSpec(_Strict):
    """Retrain the best λ set(s) and the λ = 0 baseline over fresh seeds after the search
    (``tuner.analysis.confirm``)."""

    added_later = ("max_seeds", "round_seeds", "resample_splits", "test", "ablate")

    seeds: Annotated[int, Field(ge=2, le=1000)] | Literal["auto"] = Field(10, description=(
        "fresh training seeds per arm, or auto: rounds of round_seeds until the CI excludes 0 or max_seeds"))
    top_k: int = Field(1, ge=1, le=20, description="how many of the best distinct λ sets to retrain (1: the best)")
    max_seeds: int = Field(16, ge=2, le=1000, description="seeds: auto stops here at the latest")
    round_seeds: int = Field(4, ge=2, le=1000, description="seeds: auto adds this many seeds per round")
    resample_splits: bool | None = Field(None, description=(
        "every confirmation seed also redraws the data split (workloads with a split_seed param), analysed with "
        "the corrected resampled t-test; null: the measured default (tuner.analysis.confirm)"))
    test: Literal["auto", "paired", "corrected"] = Field("auto", description=(
        "paired: the paired t-test (on one split: this split; on redrawn splits: the population of splits of this "
        "data); corrected: Nadeau & Bengio's corrected resampled t-test (redrawn splits; conservative); auto: the "
        "measured default"))
    ablate: bool = Field(False, description="one more arm per searched aux task with its λ at 0, a verdict per task")

    @model_validator(mode="after")
    def _check_rounds(self) -> ConfirmSpec:
        if self.seeds == "auto" and self.round_seeds > self.max_seeds:
            raise ValueError(f"round_seeds ({self.round_seeds}) must be at most max_seeds ({self.max_seeds})")
        return self


WeightingName = Literal["uncertainty", "gradnorm", "dwa"]
WEIGHTINGS: tuple[str, ...] = ("uncertainty", "gradnorm", "dwa")


class ArmSpec(_Strict):
    """A learned-weighting reference arm trained beside the searched λ in the confirmation
    (``tuner.engine.callbacks.weighting``).

    Written as a name (``uncertainty``) or a mapping (``{name: gradnorm, alpha: 1.5}``).
    """

    name: WeightingName
    alpha: float = Field(1.5, ge=0.0, le=limits.MAX_GRADNORM_ALPHA, description="GradNorm's restoring force α")
    temperature: limits.Temperature = Field(2.0, description="DWA's softmax temperature T")


class PopulationSpec(_Strict):
    """Population-batched trials (``tuner.engine.population.run``): a worker claims up to ``size`` trials of the study
    at once
    and trains them together as one batched model (torch.func + vmap); each is still its own trial."""

    size: int = Field(1, ge=1, le=1024, description="trials a worker trains at once; 1 = one at a time")
