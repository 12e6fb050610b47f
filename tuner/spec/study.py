"""StudySpec: the one study definition shared by the CLI, the API and the workers.

A spec is plain data (pydantic v2): its blocks (``tuner.spec.blocks``) and the checks across them (task names,
objectives on aux tasks, arms); ``tuner.spec.load`` parses one and checks it against the workload and budgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tuner.spec import limits
from tuner.spec.blocks import (
    AffinitySpec,
    ArmSpec,
    AuxTaskSpec,
    ConfirmSpec,
    ObjectiveSpec,
    PopulationSpec,
    SanitySpec,
    SearchSpec,
    TrainingSpec,
    WorkloadSpec,
    _Strict,
)
from tuner.spec.errors import SpecError, format_validation_error
from tuner.spec.objectives import aux_task_of
from tuner.spec.transfer import TRUNK_MODE_PARAM, ArtifactsSpec, TrunkSpec

#: The largest search ``search.algorithm: auto`` gives to ``gp``: searched dimensions (λ and ``search.params``) and
#: trials. GP's ask models every trial (``bench/sampler_cost.py``: 19 ms at 30 trials of 3 λ, 68 ms at 200, 75 ms at
#: 200 of 5 λ, against 1-2 ms for TPE) and its gain was measured on 3 λ (``bench/search_quality.py``).
GP_MAX_DIMS = 5
GP_MAX_TRIALS = 200


def default_algorithm(spec: StudySpec) -> str:
    """What ``search.algorithm: auto`` runs for ``spec``: ``gp`` (5 start-up trials, controls included) for a small
    single-objective search without a pruner, ``tpe`` (5 start-up trials, multivariate, constant liar) otherwise.

    ``bench/search_quality.py`` on synthetic (3 λ, 24 study seeds, the chosen λ retrained on 6 fresh seeds; README,
    "Choosing the algorithm"): at 30 trials gp:5 chose λ worth 62.3 ± 0.1 true test accuracy, tpe:5 61.8 ± 0.1,
    random 61.2 ± 0.2; paired by study seed, gp +1.1 [+0.6, +1.5] points over random and +0.4 over tpe (p = 0.013);
    at 40 epochs (12 study seeds) the same order. A Pareto study (several objectives), more than ``GP_MAX_DIMS``
    searched dimensions or more than ``GP_MAX_TRIALS`` trials get TPE, whose ask does not grow with them (GP's
    multi-objective acquisition and large histories cost seconds an ask, paid inside the claim). So does a study
    with a pruner: GP models complete trials only, and with most trials pruned it chose from the few that finished
    (``bench/pruning.py --algorithm gp``, 2 study seeds: median and hyperband chose λ = 0, the control, on one and
    lost 1.6 and 4.1 points on the other), where TPE learns from pruned trials too (their last values). ``auto`` is
    the name of that measured choice, so a later measurement can change it; a spec stores what it resolved to.
    """
    dims = len(spec.searched_tasks()) + len(spec.search.params)
    small = dims <= GP_MAX_DIMS and spec.search.n_trials <= GP_MAX_TRIALS
    single = len(spec.objective.directions()) == 1
    return "gp" if small and single and spec.search.pruner.name == "none" else "tpe"


class StudySpec(_Strict):
    """A whole λ study: workload, aux tasks and their λ bounds, search, training, objective."""

    added_later = ("affinity", "confirm", "arms", "population", "trunk", "artifacts")

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

    @model_validator(mode="after")
    def _resolve_auto_algorithm(self) -> StudySpec:
        # Set beside pydantic's bookkeeping: the field stays "not given", so ``keep_stored_defaults`` knows that
        # a resubmitted spec file left the algorithm to the default.
        if self.search.algorithm == "auto":
            object.__setattr__(self.search, "algorithm", default_algorithm(self))
        return self

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


def validate_structure(data: Any) -> StudySpec:
    """``data`` as a ``StudySpec``: its structure and bounds checked, not its workload nor budgets.

    Raises:
        SpecError: pydantic's errors in a user's words, one ``(field, message)`` each.
    """
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None
