"""``SearchBackend``: the one interface between a study spec and an Optuna sampler/pruner pair.

A backend turns ``spec.search`` and the λ bounds of the aux tasks into what an Optuna study needs: the search
space (one ``FloatDistribution`` per searched λ), a seeded sampler, a pruner, the control trials, and the
trial budget. Every backend works on the study's full trial history in the store and keeps no state of its own
that a restart would lose.

Pruning contract (the training loop's reporting callback follows it): the value reported to Optuna is the
objective metric of the epoch (``spec.objective.metric`` on the validation split) and its step is
``pruning_step(epoch_index)`` = the number of epochs completed, ``1 .. spec.training.epochs``.
"""

from __future__ import annotations

import abc
import contextlib
import importlib.util
import logging
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.trial import BaseTrial, Trial

from tuner.search._reevaluate import REEVALUATES_ATTR, reevaluation_due
from tuner.search._snapshot import warmup_epochs
from tuner.spec import AuxTaskSpec, SpecError, StudySpec
from tuner.spec.params import TRAINING_PARAMS, is_integer, param_key
from tuner.spec.transfer import TRUNK_MODE_PARAM

logger = logging.getLogger(__name__)

CONTROL_ATTR = "auxtune:control"
"""User attribute set on the control trials: ``"baseline"`` (λ = 0) or ``"equal"`` (λ = 1)."""

# Import name → the distribution a user installs to get it.
_PIP_NAMES: dict[str, str] = {"ax": "ax-platform", "cmaes": "cmaes", "scipy": "scipy", "torch": "torch"}


def pruning_step(epoch_index: int) -> int:
    """The step reported to Optuna after epoch ``epoch_index`` (0-based): the number of epochs completed."""
    return epoch_index + 1


def clip_lambda(task: AuxTaskSpec, value: float) -> float:
    """``value`` clipped into the task's λ bounds."""
    lam = task.lambda_
    return min(max(float(value), lam.low), lam.high)


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    """The distributions (pip names) of ``modules`` that cannot be imported here."""
    return [_PIP_NAMES.get(m, m) for m in modules if importlib.util.find_spec(m) is None]


@contextlib.contextmanager
def quiet_experimental() -> Iterator[None]:
    """Silence optuna's ExperimentalWarning for a part we chose knowingly (QMCSampler, WilcoxonPruner).

    Both have been marked experimental since optuna 3.x without interface changes; tests/search cover the calls.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


class SearchBackend(abc.ABC):
    """How one search algorithm explores the λ of a study.

    Subclasses set ``algorithm`` (the ``spec.search.algorithm`` value they serve) and ``requires`` (modules
    their sampler imports), and implement ``sampler``. Everything else is built from the spec here.

    A spec whose λ are all fixed (``fixed`` set, or ``low == high``) is refused: there is nothing to search and
    the study would only repeat one configuration.

    Args:
        spec: the study definition.

    Raises:
        SpecError: nothing to search, or a package the algorithm needs is not installed.
    """

    algorithm: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    #: Whether the sampler searches a categorical dimension (the trunk mode, a param's choices) next to the λ.
    categorical: ClassVar[bool] = True
    #: Whether the sampler searches ``search.params`` ranges next to the λ (choices need ``categorical`` too).
    searches_params: ClassVar[bool] = True

    #: Random (or space-filling) trials before the model takes over, controls included; None where the
    #: algorithm has no start-up phase. A bench may set it on an instance to compare start-ups.
    startup_trials: int | None = None

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self._searched = spec.searched_tasks()
        self._modes = spec.trunk_modes() if spec.trunk is not None and spec.trunk.searched else []
        if self._modes and not self.categorical:
            raise SpecError([(
                "trunk.mode",
                f"{self.algorithm!r} searches continuous λ only and cannot search the trunk mode; choose tpe, "
                "random, grid, gp, nsga2 or nsga3, or give one mode",
            )])
        self._param_errors()
        if spec.search.reevaluate is not None and spec.objective.multi:
            raise SpecError([(
                "search.reevaluate",
                "re-evaluation ranks one objective's mean; a multi-objective study answers with its Pareto front: "
                "drop search.reevaluate or objective.also",
            )])
        if not self._searched and not self._modes:
            raise SpecError([(
                "aux_tasks",
                "no λ to search: every aux task has a fixed λ (or low == high); give at least one task "
                "bounds with low < high",
            )])
        missing = missing_modules(self.requires)
        if missing:
            raise SpecError([(
                "search.algorithm",
                f"{self.algorithm!r} needs {', '.join(missing)}: pip install {' '.join(missing)}, "
                "or choose another algorithm",
            )])
        controls = len(self.controls())
        if controls > spec.search.n_trials:  # they would all run anyway: the study would overrun its budget
            raise SpecError([(
                "search.n_trials",
                f"the {controls} control trials (λ = 0 and λ = 1, run first) count towards n_trials = "
                f"{spec.search.n_trials}; raise search.n_trials to at least {controls}, or set search.controls: "
                "false",
            )])

    def _param_errors(self) -> None:
        errors: list[tuple[str, str]] = []
        for name, rng in self.spec.search.params.items():
            if not self.searches_params:
                errors.append((f"search.params.{name}", f"{self.algorithm!r} searches the λ only; choose tpe, gp, "
                                                        "random, cmaes, qmc, nsga2 or nsga3, or drop the param"))
            elif rng.choices is not None and not self.categorical:
                errors.append((f"search.params.{name}", f"{self.algorithm!r} cannot search choices; give a range "
                                                        "(low/high) or choose tpe, gp, random, nsga2 or nsga3"))
        if self.spec.search.params and self.spec.population.size > 1:
            errors.append(("search.params", "a population trains its members with one training setup; set "
                                            "population.size to 1 or drop search.params"))
        if errors:
            raise SpecError(errors)

    # -- the sampler --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def sampler(self, stream: int = 0) -> BaseSampler:
        """A new sampler for this study, seeded from ``spec.search.seed``.

        Build it once per process and pass it to ``optuna.create_study``/``load_study``. Workers of one study
        pass distinct ``stream`` numbers (e.g. their worker index) so that seeded samplers do not propose the
        same λ in parallel; backends whose sequence is shared through the study (QMC, grid, Ax) ignore it.
        """

    def _seed(self, stream: int = 0) -> int:
        # Kept in numpy's seed range (0 .. 2**32 - 1): a worker's stream is a 31-bit hash of its id.
        return (self.spec.search.seed + stream) % 2**32

    # -- the search space -----------------------------------------------------------------------------------
    def search_space(self) -> dict[str, BaseDistribution]:
        """One distribution per searched λ, named after its aux task (log scale where the spec says so), and a
        categorical ``trunk_mode`` when the spec lists several trunk modes."""
        space: dict[str, BaseDistribution] = {
            t.name: FloatDistribution(t.lambda_.low, t.lambda_.high, log=t.lambda_.log) for t in self._searched
        }
        if self._modes:
            space[TRUNK_MODE_PARAM] = CategoricalDistribution(self._modes)
        space.update(self.param_space())
        return space

    def param_space(self) -> dict[str, BaseDistribution]:
        """One distribution per ``search.params`` entry, named ``param.<name>`` (``tuner.spec.params``)."""
        space: dict[str, BaseDistribution] = {}
        for name, rng in self.spec.search.params.items():
            if rng.choices is not None:
                space[param_key(name)] = CategoricalDistribution(rng.choices)
            elif is_integer(name, self._model_params()):
                space[param_key(name)] = IntDistribution(int(rng.low or 0), int(rng.high or 0), log=rng.log)
            else:
                space[param_key(name)] = FloatDistribution(float(rng.low or 0.0), float(rng.high or 0.0),
                                                           log=rng.log)
        return space

    def _model_params(self) -> dict[str, str]:
        # Only a workload's own int params need the registry; torch-free (tuner.workloads builds nothing here).
        names = [n for n in self.spec.search.params if n not in TRAINING_PARAMS]
        if not names:
            return {}
        from tuner.workloads import make_workload
        return dict(type(make_workload(self.spec.workload.name, self.spec.workload.params)).model_params)

    def ask(self, study: optuna.Study) -> Trial:
        """A new trial of ``study`` with every searched λ already sampled (enqueued controls come first)."""
        fixed: dict[str, BaseDistribution] = dict(self.search_space())
        return study.ask(fixed_distributions=fixed)

    def suggest(self, trial: Trial) -> dict[str, Any]:
        """Give ``trial`` its searched λ through ``trial.suggest_float`` (an enqueued or requeued trial gets
        its stored values back) and return every aux task's λ (and a searched ``trunk_mode``): the store's
        ``SuggestFn`` for claims. With ``search.reevaluate``, a new trial may instead repeat a leading candidate's
        λ (``tuner.search._reevaluate``): then the sampler is not asked."""
        self._maybe_reevaluate(trial)
        for name, dist in self.search_space().items():
            if isinstance(dist, FloatDistribution):
                trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        out: dict[str, Any] = dict(self.lambdas_of(trial))
        if self._modes:
            out[TRUNK_MODE_PARAM] = trial.suggest_categorical(TRUNK_MODE_PARAM, self._modes)
        for name, dist in self.param_space().items():
            if isinstance(dist, CategoricalDistribution):
                out[name] = trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, IntDistribution):
                out[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
            elif isinstance(dist, FloatDistribution):
                out[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        return out

    def _maybe_reevaluate(self, trial: Trial) -> None:
        cfg = self.spec.search.reevaluate
        if cfg is None or trial.params or trial._fixed_params:  # a requeued or enqueued trial keeps its λ
            return
        due = reevaluation_due(trial.study.get_trials(deepcopy=False), cfg, self.max_trials(),
                               str(self.spec.objective.direction))
        if due is None:
            return
        number, params = due
        # As ``enqueue_trial`` fixes a waiting trial's λ: ``suggest_*`` answers with them, the sampler is not asked.
        trial._fixed_params = dict(params)
        trial.storage.set_trial_system_attr(trial._trial_id, "fixed_params", dict(params))
        trial.set_user_attr(REEVALUATES_ATTR, number)

    def lambdas_of(self, trial: BaseTrial) -> dict[str, float]:
        """Every aux task's λ for ``trial``: the searched ones from its params, the others from the spec."""
        out: dict[str, float] = {}
        params = trial.params
        for task in self.spec.aux_tasks:
            if task.lambda_.searched:
                if task.name not in params:
                    raise KeyError(f"trial {trial.number} has no λ for aux task {task.name!r}")
                out[task.name] = float(params[task.name])
            else:
                out[task.name] = task.lambda_.default()
        return out

    # -- controls and budget --------------------------------------------------------------------------------
    def _labelled_controls(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.spec.search.controls:
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        for label, value in (("baseline", 0.0), ("equal", 1.0)):
            params: dict[str, Any] = {t.name: clip_lambda(t, value) for t in self._searched}
            if self._modes:  # the controls train with the first trunk mode listed
                params[TRUNK_MODE_PARAM] = self._modes[0]
            if all(params != seen for _, seen in out):
                out.append((label, params))
        return out

    def controls(self) -> list[dict[str, Any]]:
        """The searched λ of the control trials, to run first: λ = 0 for all (the baseline) and λ = 1 for all.

        Each value is clipped into its task's bounds and duplicates are dropped; empty when
        ``spec.search.controls`` is false. Controls count towards ``n_trials``.
        """
        return [params for _, params in self._labelled_controls()]

    def enqueue_controls(self, study: optuna.Study) -> None:
        """Enqueue the controls on ``study`` once, tagged with ``CONTROL_ATTR``; a rerun adds nothing."""
        for label, params in self._labelled_controls():
            study.enqueue_trial(params, user_attrs={CONTROL_ATTR: label}, skip_if_exists=True)

    def max_trials(self) -> int:
        """How many trials the study runs, controls included."""
        return self.spec.search.n_trials

    # -- the pruner ---------------------------------------------------------------------------------------
    def pruner(self) -> BasePruner:
        """The pruner named by ``spec.search.pruner``; steps follow ``pruning_step``.

        - ``none``: never prunes.
        - ``median``: prunes a trial whose value at a step is worse than the median of earlier trials at that
          step, from 5 finished trials on, never before the warm-up is done: ``warmup_epochs`` epochs, by default
          until the study's curves have left their start, 2 epochs to half of ``training.epochs``
          (``tuner.search.warmup_range``; the worker's ``SnapshotPruner`` applies the end).
        - ``hyperband``: resource = epochs, from 1 to ``training.epochs``, reduction factor 3
          (``warmup_epochs`` is not used: the brackets decide).
        - ``wilcoxon``: Optuna's pruner is meant for per-instance scores (one step per problem instance); we
          report one step per epoch, so it pairs the trial's validation curve with the best trial's, epoch by
          epoch, and prunes when a Wilcoxon signed-rank test (p < 0.1) says the curve is below the best one.
          Epochs are not independent instances, so read the p-value as a heuristic, not a calibrated test.
          Pruning starts after the warm-up (and never before 2 epochs, which the test needs).

        A worker asks it through ``SnapshotPruner``: in memory, with no write per epoch.
        """
        cfg = self.spec.search.pruner
        if cfg.name == "none":
            return optuna.pruners.NopPruner()
        if cfg.name == "median":
            return optuna.pruners.MedianPruner(n_warmup_steps=warmup_epochs(self.spec))
        if cfg.name == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=self.spec.training.epochs)
        if cfg.name == "wilcoxon":
            missing = missing_modules(("scipy",))
            if missing:
                raise SpecError([("search.pruner.name", "'wilcoxon' needs scipy: pip install scipy")])
            with quiet_experimental():
                return optuna.pruners.WilcoxonPruner(n_startup_steps=max(2, warmup_epochs(self.spec)))
        raise SpecError([("search.pruner.name", f"unknown pruner {cfg.name!r}; allowed: none, median, "
                          "hyperband, wilcoxon")])

