"""StudySpec: the one study definition shared by the CLI, the API and the workers.

A spec is plain data (pydantic v2). ``parse_spec``/``load_spec`` check its structure *and* check it against
the workload registry (the workload exists, every aux task is one the workload offers, every loss fits its task's
targets), so a spec that loads is a spec a worker can run. Errors name the field and what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from tuner.spec import limits
from tuner.spec.objectives import ObjectiveTerm, aux_task_of
from tuner.spec.transfer import TRUNK_MODE_PARAM, ArtifactsSpec, TrunkSpec, check_trial_ref

LossName = Literal["ce", "bce", "mse", "kd", "mmd"]
LOSSES: tuple[str, ...] = ("ce", "bce", "mse", "kd", "mmd")
ALGORITHMS: tuple[str, ...] = ("tpe", "gp", "cmaes", "qmc", "random", "grid", "ax", "nsga2", "nsga3")
PRUNERS: tuple[str, ...] = ("none", "median", "hyperband", "wilcoxon")
METRIC_DIRECTIONS: dict[str, str] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "target_val_accuracy": "maximize",  # the main task on a target domain's labelled validation split
    "target_val_loss": "minimize",
}


class SpecError(ValueError):
    """A spec that cannot be run; ``errors`` lists ``(field, message)`` pairs a user can act on."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        """One ``field: message`` line per problem."""
        return [f"{loc}: {msg}" if loc else msg for loc, msg in self.errors]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


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

    @model_serializer(mode="wrap")
    def _omit_teacher_when_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.teacher is None:  # a task stored before ``teacher`` existed keeps its document (and spec hash)
            data.pop("teacher", None)
        return data


class WorkloadSpec(_Strict):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(_Strict):
    name: Literal["none", "median", "hyperband", "wilcoxon"] = "none"
    warmup_epochs: int = Field(2, ge=0, le=limits.MAX_EPOCHS)


class SearchSpec(_Strict):
    algorithm: Literal["tpe", "gp", "cmaes", "qmc", "random", "grid", "ax", "nsga2", "nsga3"] = "tpe"
    n_trials: int = Field(30, gt=0, le=limits.MAX_TRIALS)
    seed: limits.Seed = 0
    controls: bool = Field(True, description="enqueue λ=0 (baseline) and λ=1 (equal weights) first")
    grid_points: int = Field(3, ge=2, le=limits.MAX_GRID_SIZE, description="values per λ for the grid algorithm")
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    max_parallel: int = Field(0, ge=0, le=limits.MAX_PARALLEL,
                              description="most trials running at once; 0 = no limit")


class TrainingSpec(_Strict):
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

    @model_serializer(mode="wrap")
    def _omit_also_when_empty(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not self.also:  # a single-objective spec stores as it did before ``also`` existed
            data.pop("also", None)
        return data

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

    seeds: int = Field(10, ge=2, le=1000, description="fresh training seeds per arm (same data splits)")
    top_k: int = Field(1, ge=1, le=20, description="how many of the best distinct λ sets to retrain (1: the best)")


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


#: Blocks added after the first release, left out of the stored document while at their default, so a study
#: stored before they existed still has the same spec (and resumes instead of conflicting).
_OMITTED_AT_DEFAULT: dict[str, Any] = {"affinity": AffinitySpec(), "confirm": None, "arms": [],
                                       "population": PopulationSpec(), "trunk": None, "artifacts": ArtifactsSpec()}


class StudySpec(_Strict):
    """A whole λ study: workload, aux tasks and their λ bounds, search, training, objective."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    workload: WorkloadSpec
    aux_tasks: list[AuxTaskSpec] = Field(default_factory=list, max_length=limits.MAX_AUX_TASKS)
    search: SearchSpec = Field(default_factory=SearchSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    sanity: SanitySpec = Field(default_factory=SanitySpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)
    affinity: AffinitySpec = Field(default_factory=AffinitySpec)
    confirm: ConfirmSpec | None = Field(None, description="confirm the answer automatically after the search")
    arms: list[ArmSpec] = Field(default_factory=list, description="learned-weighting arms of the confirmation")
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    trunk: TrunkSpec | None = Field(None, description="start the trunk from a saved trial's model")
    artifacts: ArtifactsSpec = Field(default_factory=ArtifactsSpec)

    @field_validator("arms", mode="before")
    @classmethod
    def _arm_names(cls, arms: Any) -> Any:
        if not isinstance(arms, list):
            return arms
        out = [{"name": a} if isinstance(a, str) else a for a in arms]
        names = [a.get("name") for a in out if isinstance(a, dict)]
        dupes = sorted({str(n) for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"arm(s) {dupes} listed more than once; list each arm once")
        return out

    @model_serializer(mode="wrap")
    def _omit_new_blocks_at_default(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key, default in _OMITTED_AT_DEFAULT.items():
            if getattr(self, key) == default:
                data.pop(key, None)
        return data

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_list(cls, objective: Any) -> Any:
        if not isinstance(objective, list):
            return objective
        if not objective or not all(isinstance(o, dict) for o in objective):
            raise ValueError("a list of objectives needs at least one {metric, direction} mapping")
        return {**objective[0], "also": objective[1:]}

    @field_validator("objective")
    @classmethod
    def _objective_tasks(cls, objective: ObjectiveSpec, info: ValidationInfo) -> ObjectiveSpec:
        if "aux_tasks" not in info.data:  # the tasks failed their own checks; those errors say enough
            return objective
        tasks = [t.name for t in info.data["aux_tasks"]]
        for metric in objective.metrics():
            task = aux_task_of(metric)
            if task is not None and task not in tasks:
                raise ValueError(f"{metric}: {task!r} is not an aux task of this study; the study has {tasks}")
        return objective

    @field_validator("aux_tasks")
    @classmethod
    def _check_unique_tasks(cls, tasks: list[AuxTaskSpec]) -> list[AuxTaskSpec]:
        # A field validator, so the error's location is ``aux_tasks`` (a model validator's would be empty).
        names = [t.name for t in tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task(s) {dupes} listed more than once; list each task once")
        if TRUNK_MODE_PARAM in names:
            raise ValueError(f"{TRUNK_MODE_PARAM!r} names the searched trunk mode; give the task another name")
        return tasks

    # -- λ helpers -------------------------------------------------------------------------------------
    def trunk_modes(self) -> list[str]:
        """The trunk modes of the study (``[]`` without ``trunk``); more than one: searched as ``trunk_mode``."""
        return self.trunk.modes() if self.trunk is not None else []

    def trunk_mode_of(self, params: Mapping[str, Any]) -> str | None:
        """The trunk mode a trial with these params trains with: its searched ``trunk_mode``, else the first."""
        modes = self.trunk_modes()
        if not modes:
            return None
        mode = params.get(TRUNK_MODE_PARAM, modes[0])
        if mode not in modes:
            raise SpecError([(TRUNK_MODE_PARAM, f"{mode!r} is not a mode of this study; it has {modes}")])
        return str(mode)

    def searched_tasks(self) -> list[AuxTaskSpec]:
        return [t for t in self.aux_tasks if t.lambda_.searched]

    def default_lambdas(self) -> dict[str, float]:
        return {t.name: t.lambda_.default() for t in self.aux_tasks}

    def complete_lambdas(self, given: dict[str, float]) -> dict[str, float]:
        """Fill fixed λ and check a user-given λ set: names known, values inside bounds."""
        known = {t.name: t for t in self.aux_tasks}
        errors = [(f"lambda.{k}", f"unknown aux task; the study has {sorted(known)}") for k in given
                  if k not in known]
        out: dict[str, float] = {}
        for name, task in known.items():
            lam = task.lambda_
            if lam.fixed is not None:
                if name in given and given[name] != lam.fixed:
                    errors.append((f"lambda.{name}", f"λ is fixed at {lam.fixed} by the spec"))
                out[name] = lam.fixed
            elif name in given:
                v = float(given[name])
                if not (lam.low <= v <= lam.high):
                    errors.append((f"lambda.{name}", f"{v} is outside the bounds [{lam.low}, {lam.high}]"))
                out[name] = v
            else:
                out[name] = lam.default()
        if errors:
            raise SpecError(errors)
        return out


def format_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    """Turn pydantic's error list into ``(field.path, message)`` pairs in user words."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif err["type"] == "literal_error":
            ctx = err.get("ctx", {})
            msg = f"got {err.get('input')!r}; allowed: {ctx.get('expected', '')}"
        out.append((loc, msg))
    return out


def parse_spec(data: dict[str, Any], base_dir: Path | None = None) -> StudySpec:
    """Validate a spec given as a dict; relative data paths resolve against ``base_dir``.

    Raises:
        SpecError: with one ``(field, message)`` per problem.
    """
    if not isinstance(data, dict):
        raise SpecError([("", "a study spec must be a mapping (YAML/JSON object)")])
    unstorable = [(".".join(map(str, loc)), msg) for loc, msg in limits.unstorable_values(data, [])]
    if unstorable:  # before pydantic, whose messages would print a number past 4 300 digits
        raise SpecError(unstorable)
    if base_dir is not None:
        data = _resolve_paths(data, base_dir)
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None
    from tuner.workloads import check_spec_against_workload

    check_spec_against_workload(spec)
    budget = limits.budget_errors(spec)
    if budget:
        raise SpecError(budget)
    return spec


def load_spec(path: str | Path) -> StudySpec:
    """Read a YAML or JSON spec file; paths inside it are relative to the file's folder."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError([("", f"cannot read spec file {p}: {exc.strerror}")]) from None
    kind = "JSON" if p.suffix == ".json" else "YAML"
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError) as exc:  # ValueError: also a number past 4 300 digits
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split("; use sys.")[0]
        raise SpecError([("", f"{p} is not valid {kind}: {why}")]) from None
    return parse_spec(data, base_dir=p.resolve().parent)


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    from tuner.workloads import get_workload

    workload = data.get("workload")
    if not isinstance(workload, dict) or not isinstance(workload.get("params"), dict):
        return data
    try:
        cls = get_workload(str(workload.get("name")))
    except KeyError:
        return data
    params = dict(workload["params"])
    for key in cls.path_params:
        value = params.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            params[key] = str((base_dir / value).resolve())
    return {**data, "workload": {**workload, "params": params}}
