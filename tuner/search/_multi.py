"""Multi-objective (Pareto) studies: the NSGA-II/III backends and what every backend must meet there.

A study with ``objective.also`` set has several objectives; Optuna then keeps a vector of values per trial and
its multi-objective samplers search for the Pareto front. ``tpe`` (MOTPE), ``gp`` (log EHVI), ``random``,
``qmc`` and ``grid`` handle several objectives as they are; ``nsga2`` and ``nsga3`` are the evolutionary ones;
``ax`` uses Ax's multi-objective optimisation (``tuner.search._ax``); ``cmaes`` optimises one value only and is
refused. Optuna's pruners compare one
value per step, so a multi-objective study runs without a pruner.
"""

from __future__ import annotations

from optuna.samplers import BaseSampler, NSGAIIISampler, NSGAIISampler

from tuner.search._base import SearchBackend
from tuner.spec import SpecError, StudySpec

#: Algorithms that optimise a single value: refused for a multi-objective study.
SINGLE_OBJECTIVE_ONLY: tuple[str, ...] = ("cmaes",)


def check_objectives(spec: StudySpec) -> None:
    """Refuse a multi-objective spec that its search cannot run.

    Raises:
        SpecError: naming ``search.algorithm`` or ``search.pruner.name`` and what to choose instead.
    """
    if not spec.objective.multi:
        return
    errors: list[tuple[str, str]] = []
    n = len(spec.objective.metrics())
    if spec.search.algorithm in SINGLE_OBJECTIVE_ONLY:
        errors.append(("search.algorithm", f"{spec.search.algorithm!r} optimises one objective and this study has "
                                           f"{n}; choose nsga2, nsga3, tpe, gp, ax, random, qmc or grid"))
    if spec.search.pruner.name != "none":
        errors.append(("search.pruner.name", f"pruners compare one value per epoch and this study has {n} "
                                             "objectives; set the pruner to none"))
    if errors:
        raise SpecError(errors)


def population_size(spec: StudySpec) -> int:
    """NSGA's generation size: Optuna's 50 is more than most λ budgets; aim at ≥ 4 generations, 4 to 50 each."""
    return max(4, min(50, spec.search.n_trials // 4))


class NSGA2Backend(SearchBackend):
    """NSGA-II (non-dominated sorting genetic algorithm), generations of ``population_size(spec)`` trials."""

    algorithm = "nsga2"

    def sampler(self, stream: int = 0) -> BaseSampler:
        return NSGAIISampler(population_size=population_size(self.spec), seed=self._seed(stream))


class NSGA3Backend(SearchBackend):
    """NSGA-III: NSGA-II with reference points, for three or more objectives."""

    algorithm = "nsga3"

    def sampler(self, stream: int = 0) -> BaseSampler:
        return NSGAIIISampler(population_size=population_size(self.spec), seed=self._seed(stream))
