"""StudySpec: the one study definition shared by the CLI, the API and the workers.

A spec is plain data (pydantic v2). ``parse_spec``/``load_spec`` check its structure *and* check it against
the workload registry (the workload exists, every aux task is one the workload offers, every loss fits its task's
targets), so a spec that loads is a spec a worker can run. Errors name the field and what is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

LossName = Literal["ce", "bce", "mse", "kd"]
LOSSES: tuple[str, ...] = ("ce", "bce", "mse", "kd")
ALGORITHMS: tuple[str, ...] = ("tpe", "gp", "cmaes", "qmc", "random", "grid", "ax")
PRUNERS: tuple[str, ...] = ("none", "median", "hyperband", "wilcoxon")
METRIC_DIRECTIONS: dict[str, str] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
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
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class LambdaSpec(_Strict):
    """Bounds of one λ: searched in ``[low, high]`` (log scale if ``log``), or ``fixed``."""

    low: float = Field(0.0, ge=0.0, description="lower bound of λ, ≥ 0")
    high: float = Field(2.0, ge=0.0, description="upper bound of λ, ≥ low")
    log: bool = Field(False, description="search on a log scale (needs low > 0)")
    fixed: float | None = Field(None, ge=0.0, description="a constant λ, not searched")

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
    name: str = Field(min_length=1)
    loss: LossName
    lambda_: LambdaSpec = Field(default_factory=LambdaSpec, alias="lambda")
    temperature: float = Field(2.0, gt=0.0, description="softmax temperature of a kd loss")


class WorkloadSpec(_Strict):
    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class PrunerSpec(_Strict):
    name: Literal["none", "median", "hyperband", "wilcoxon"] = "none"
    warmup_epochs: int = Field(2, ge=0)


class SearchSpec(_Strict):
    algorithm: Literal["tpe", "gp", "cmaes", "qmc", "random", "grid", "ax"] = "tpe"
    n_trials: int = Field(30, gt=0)
    seed: int = 0
    controls: bool = Field(True, description="enqueue λ=0 (baseline) and λ=1 (equal weights) first")
    grid_points: int = Field(3, ge=2, description="values per λ for the grid algorithm")
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    max_parallel: int = Field(0, ge=0, description="most trials running at once; 0 = no limit")


class TrainingSpec(_Strict):
    epochs: int = Field(20, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0.0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = Field(0.0, ge=0.0)
    patience: int | None = Field(None, gt=0, description="early stopping: epochs without improvement")
    seed: int = 0
    device: str = Field("auto", description="'auto' (cuda when present), 'cpu', 'cuda', 'cuda:N'")
    hidden: int = Field(64, gt=0, description="width of the shared trunk")

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")


class SanitySpec(_Strict):
    """The one-minibatch check run before every trial (see ``tuner.sanity``)."""

    enabled: bool = True
    max_steps: int = Field(40, gt=0, description="most optimisation steps on the one minibatch")
    batch_size: int = Field(32, gt=0)
    lr: float | None = Field(None, gt=0.0, description="learning rate of the gate; default: training.lr × 3")
    min_loss_drop: float = Field(0.5, gt=0.0, lt=1.0, description="fraction the total loss must fall by")
    min_accuracy: float = Field(0.9, gt=0.0, le=1.0, description="main-task accuracy to reach on the batch")


class ObjectiveSpec(_Strict):
    metric: Literal["val_accuracy", "val_loss"] = "val_accuracy"
    direction: Literal["maximize", "minimize"] | None = None

    @model_validator(mode="after")
    def _check_direction(self) -> ObjectiveSpec:
        natural = METRIC_DIRECTIONS[self.metric]
        if self.direction is None:
            self.direction = natural  # type: ignore[assignment]
        elif self.direction != natural:
            raise ValueError(f"{self.metric} is to be {natural}d; set direction: {natural}")
        return self


class StudySpec(_Strict):
    """A whole λ study: workload, aux tasks and their λ bounds, search, training, objective."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    workload: WorkloadSpec
    aux_tasks: list[AuxTaskSpec] = Field(default_factory=list)
    search: SearchSpec = Field(default_factory=SearchSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    sanity: SanitySpec = Field(default_factory=SanitySpec)
    objective: ObjectiveSpec = Field(default_factory=ObjectiveSpec)

    @field_validator("aux_tasks")
    @classmethod
    def _check_unique_tasks(cls, tasks: list[AuxTaskSpec]) -> list[AuxTaskSpec]:
        # A field validator, so the error's location is ``aux_tasks`` (a model validator's would be empty).
        names = [t.name for t in tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task(s) {dupes} listed more than once; list each task once")
        return tasks

    # -- λ helpers -------------------------------------------------------------------------------------
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
    if base_dir is not None:
        data = _resolve_paths(data, base_dir)
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None
    from tuner.workloads import check_spec_against_workload

    check_spec_against_workload(spec)
    return spec


def load_spec(path: str | Path) -> StudySpec:
    """Read a YAML or JSON spec file; paths inside it are relative to the file's folder."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError([("", f"cannot read spec file {p}: {exc.strerror}")]) from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError([("", f"{p} is not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}")]) from None
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
