"""``grid``: every combination of ``grid_points`` evenly spaced λ per task (in log space where ``log``).

Optuna's ``GridSampler`` is made to fit our ask/tell loop with controls:

- an enqueued control whose λ lie on the grid takes that grid point (it is not run twice); a control off the grid
  is an extra trial, so ``max_trials`` = min(n_trials, grid size + controls off the grid);
- a new trial takes an unvisited grid point chosen by its trial number, not by the process's random state, so
  parallel workers asking at the same moment get different points;
- when the grid is exhausted it does not call ``study.stop()`` (which raises outside ``study.optimize``);
  the runner stops at ``max_trials``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler, GridSampler
from optuna.trial import FrozenTrial, TrialState

from tuner.search._base import SearchBackend
from tuner.spec import SpecError, StudySpec
from tuner.spec.checks import grid_errors, grid_size
from tuner.spec.params import param_key
from tuner.spec.transfer import TRUNK_MODE_PARAM

logger = logging.getLogger(__name__)


def _is_close(a: float, b: float) -> bool:
    # Grid values computed in log space and values read back from storage differ by float noise only.
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _same_value(a: Any, b: Any) -> bool:
    """Equal grid values: λ up to float noise, a trunk mode exactly."""
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return _is_close(float(a), float(b))


class LambdaGridSampler(GridSampler):
    """``GridSampler`` that counts on-grid enqueued trials as grid points and never stops the study."""

    def grid_id_of(self, params: Mapping[str, Any]) -> int | None:
        """The grid point equal to ``params`` (up to float noise), or ``None`` when off the grid."""
        if set(params) != set(self._param_names):
            return None
        for grid_id, point in enumerate(self._all_grids):
            if all(_same_value(params[n], v) for n, v in zip(self._param_names, point, strict=True)):
                return grid_id
        return None

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if "grid_id" in trial.system_attrs:
            return
        if "fixed_params" in trial.system_attrs:
            grid_id = self.grid_id_of(trial.system_attrs["fixed_params"])
            if grid_id is None:
                return  # an off-grid control: its λ are fixed, no grid point is used
        else:
            unvisited = sorted(self._get_unvisited_grid_ids(study))
            if not unvisited:
                logger.warning("the grid is exhausted; trial %d repeats a grid point", trial.number)
                unvisited = list(range(len(self._all_grids)))
            grid_id = unvisited[trial.number % len(unvisited)]
        study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
        study._storage.set_trial_system_attr(trial._trial_id, "grid_id", grid_id)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None


class GridBackend(SearchBackend):
    """Grid search over ``spec.search.grid_points`` values per searched λ, bounds included."""

    algorithm = "grid"

    def __init__(self, spec: StudySpec) -> None:
        super().__init__(spec)
        ranges = [name for name, rng in spec.search.params.items() if rng.choices is None]
        if ranges:
            raise SpecError([(f"search.params.{name}", "grid searches a param's choices only; give choices "
                                                       "(a list) or choose tpe, gp or random") for name in ranges])
        too_large = grid_errors(spec)  # parse_spec refuses these too; a spec stored before the limit is here
        if too_large:
            raise SpecError(too_large)

    def grid(self) -> dict[str, list[Any]]:
        """The grid values of each searched λ (and every trunk mode, when the mode is searched)."""
        n = self.spec.search.grid_points
        out: dict[str, list[Any]] = {}
        for t in self._searched:
            lo, hi = t.lambda_.low, t.lambda_.high
            if t.lambda_.log:
                values = np.exp(np.linspace(math.log(lo), math.log(hi), n))
            else:
                values = np.linspace(lo, hi, n)
            # Pin the ends: exp(log(x)) may land a hair outside [low, high].
            out[t.name] = [lo, *(min(max(float(v), lo), hi) for v in values[1:-1]), hi]
        if self._modes:
            out[TRUNK_MODE_PARAM] = list(self._modes)
        for name, rng in self.spec.search.params.items():
            out[param_key(name)] = list(rng.choices or [])
        return out

    def grid_size(self) -> int:
        return grid_size(self.spec)

    def sampler(self, stream: int = 0) -> BaseSampler:
        # One seed for every worker: the grid order (and so what a stored grid_id means) must agree.
        return LambdaGridSampler(self.grid(), seed=self._seed())

    def max_trials(self) -> int:
        grid = LambdaGridSampler(self.grid())
        off_grid = sum(1 for c in self.controls() if grid.grid_id_of(c) is None)
        return min(self.spec.search.n_trials, self.grid_size() + off_grid)
