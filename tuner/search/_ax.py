"""``ax``: Ax Bayesian optimisation (ax-platform's ``Client``) driven by the study's trial history in the store.

``AxSampler`` is an Optuna sampler, so the store, the workers, the pruners and optuna-dashboard treat an Ax study
like any other. It keeps no Ax state between asks: every ``sample_relative`` builds a fresh ``ax.Client`` from the
trials stored in the Optuna study, so an Ax study survives a restart (or a worker on another machine) unchanged.

What the client is told, per stored trial (other than the one being sampled):

- COMPLETE with finite values: attached and completed with its value of every objective;
- PRUNED: attached and completed with its last reported intermediate value (the value it was pruned at; a
  pessimistic figure, which is the pruner's verdict) — skipped when it reported nothing;
- RUNNING, or WAITING with enqueued λ: attached and left running, so Ax treats it as pending and does not
  propose the same λ to a parallel worker;
- FAIL (e.g. a failed sanity gate), or λ outside the current space: not shown to Ax.

Phases: with fewer than ``init_trials`` observed trials the client uses Ax's initialisation (the centre of the
box when the study is empty, else Sobol, seeded per trial number so parallel asks differ); from then on Ax's
default Bayesian optimisation ("MBM": a BoTorch GP with log-NEI) only. The choice is ours rather than Ax's
transition logic because a fresh client would start at its first node on every ask. Each sampled trial records
``ax:phase``, ``ax:observed``, ``ax:pending`` and ``ax:objective`` (what Ax optimised) in its system
attributes.

Multi-objective studies (``objective.also``): the client optimises every objective at once
(``configure_optimization(objective="a, -b")``, Ax's qLogNEHVI once Bayesian optimisation starts; no thresholds,
so Ax infers the reference point from the data) and is told each trial's whole vector of values. The objectives
reach Ax under names of its grammar (``val_loss:aux`` → ``val_loss_aux``). Pruned trials carry one value per
step, not a vector: a multi-objective study runs without a pruner (``tuner.search._multi``).

Import cost: ``import ax`` takes ~5 s, paid on the first ask of a process, not on ``import tuner.search``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from tuner.search._base import SearchBackend

logger = logging.getLogger(__name__)

AX_INIT_TRIALS = 5
"""Observed trials before Bayesian optimisation takes over (Ax's own default initialisation budget)."""

Params = dict[str, float]


def ax_metric_names(metrics: Sequence[str]) -> list[str]:
    """``metrics`` as names Ax's objective grammar accepts (word characters, not starting with a digit), unique."""
    out: list[str] = []
    for i, metric in enumerate(metrics):
        name = re.sub(r"\W", "_", metric)
        name = name if name and not name[0].isdigit() else f"m_{name}"
        out.append(name if name not in out else f"{name}_{i}")
    return out


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Fit and optimise on one torch thread, then restore the process's setting.

    A GP over a few dozen trials gains nothing from intra-op threads, and on a busy machine the thread pool
    makes one ask 5-20x slower (measured: 0.3-0.9 s vs 1.5-12 s per ask on 2 loaded cores). Workers sample
    between trials, never while training, so the global setting is theirs again before training starts.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class AxSampler(BaseSampler):
    """Optuna sampler that asks a freshly built ``ax.Client`` for every trial's λ.

    Args:
        search_space: the λ to search (float distributions, no ``step``); other parameters are sampled at random.
        metric: the objective's name as Ax sees it (the study's direction decides the sign).
        metrics: a multi-objective study's objectives, the primary first (their directions are the study's);
            ``metric`` is not used then.
        seed: base seed; trial ``n`` is generated under ``seed + n`` (``None``: unseeded).
        init_trials: observed trials before Bayesian optimisation takes over.
    """

    def __init__(
        self,
        search_space: Mapping[str, FloatDistribution],
        *,
        metric: str = "objective",
        metrics: Sequence[str] | None = None,
        seed: int | None = None,
        init_trials: int = AX_INIT_TRIALS,
    ) -> None:
        for name, dist in search_space.items():
            if not isinstance(dist, FloatDistribution) or dist.step is not None:
                raise ValueError(f"AxSampler searches continuous floats only; {name!r} is {dist}")
        self._space = dict(search_space)
        self._metric = metric
        self._metrics = list(metrics) if metrics else [metric]
        self._seed = seed
        self._init_trials = init_trials
        self._independent = RandomSampler(seed=seed)

    def reseed_rng(self) -> None:
        self._independent.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._independent.sample_independent(study, trial, param_name, param_distribution)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        if len(study.directions) != len(self._metrics):
            raise ValueError(f"this AxSampler optimises {len(self._metrics)} objective(s) and the study has "
                             f"{len(study.directions)}; build it with metrics=… naming each")
        observed, pending = self._history(study, trial)
        phase = "bayesopt" if len(observed) >= self._init_trials else "initialization"
        seed = None if self._seed is None else self._seed + trial.number
        try:
            params = self._suggest(observed, pending, phase, study.directions, seed)
        except Exception:
            if phase != "bayesopt":
                raise
            # A failed model fit must not kill a worker; a Sobol point is still a valid suggestion.
            logger.warning("Ax Bayesian optimisation failed for trial %d; using Sobol", trial.number, exc_info=True)
            phase = "initialization"
            params = self._suggest(observed, pending, phase, study.directions, seed)
        for key, value in (("ax:phase", phase), ("ax:observed", len(observed)), ("ax:pending", len(pending)),
                           ("ax:objective", self._objective(study.directions))):
            study._storage.set_trial_system_attr(trial._trial_id, key, value)
        logger.info("trial %d: Ax %s from %d observed, %d pending trials", trial.number, phase, len(observed),
                    len(pending))
        out: dict[str, Any] = {}
        for name, dist in search_space.items():
            assert isinstance(dist, FloatDistribution)
            out[name] = min(max(float(params[name]), dist.low), dist.high)
        return out

    def _objective(self, directions: Sequence[StudyDirection]) -> str:
        """What Ax optimises, in its grammar: ``"val_accuracy"``, or ``"val_accuracy, -val_loss_aux"`` (``-``:
        minimised) for a multi-objective study."""
        return ", ".join(("" if d == StudyDirection.MAXIMIZE else "-") + name
                         for name, d in zip(ax_metric_names(self._metrics), directions, strict=True))

    # -- the history ----------------------------------------------------------------------------------------
    def _params_in_space(self, params: Mapping[str, Any]) -> Params | None:
        out: Params = {}
        for name, dist in self._space.items():
            value = params.get(name)
            if not isinstance(value, int | float) or not dist._contains(dist.to_internal_repr(float(value))):
                return None
            out[name] = float(value)
        return out

    def _history(self, study: optuna.Study, current: FrozenTrial) -> tuple[list[tuple[Params, list[float]]],
                                                                            list[Params]]:
        """(observed λ and values, one per objective; pending λ) of every stored trial other than ``current``."""
        observed: list[tuple[Params, list[float]]] = []
        pending: list[Params] = []
        for t in study.get_trials(deepcopy=False):
            if t.number == current.number:
                continue
            raw = t.system_attrs.get("fixed_params", {}) if t.state == TrialState.WAITING else t.params
            params = self._params_in_space(raw)
            if params is None:
                continue
            values: list[float] | None
            if t.state == TrialState.COMPLETE:
                values = None if t.values is None else [float(v) for v in t.values]
            elif t.state == TrialState.PRUNED and t.intermediate_values and len(self._metrics) == 1:
                values = [float(t.intermediate_values[max(t.intermediate_values)])]
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                pending.append(params)
                continue
            else:
                continue
            if values is not None and len(values) == len(self._metrics) and all(math.isfinite(v) for v in values):
                observed.append((params, values))
        return observed, pending

    # -- the client -----------------------------------------------------------------------------------------
    def _suggest(
        self,
        observed: list[tuple[Params, list[float]]],
        pending: list[Params],
        phase: str,
        directions: Sequence[StudyDirection],
        seed: int | None,
    ) -> Params:
        from ax import Client, RangeParameterConfig
        from ax.utils.common.logger import set_stderr_log_level

        # Ax logs every attached/completed trial at INFO; a rebuild per ask would flood the worker's log.
        set_stderr_log_level(logging.WARNING)
        client = Client(random_seed=seed)
        client.configure_experiment(parameters=[
            RangeParameterConfig(name=name, bounds=(dist.low, dist.high), parameter_type="float",
                                 scaling="log" if dist.log else "linear")
            for name, dist in self._space.items()
        ])
        names = ax_metric_names(self._metrics)
        client.configure_optimization(objective=self._objective(directions))
        if phase == "bayesopt":
            client.configure_generation_strategy(initialization_budget=0, initialize_with_center=False)
        else:
            client.configure_generation_strategy(
                initialization_budget=self._init_trials,
                initialization_random_seed=seed,
                allow_exceeding_initialization_budget=True,
            )
        for params, values in observed:
            index = client.attach_trial(parameters=dict(params))
            client.complete_trial(trial_index=index, raw_data=dict(zip(names, values, strict=True)))
        for params in pending:
            client.attach_trial(parameters=dict(params))
        with warnings.catch_warnings(), _one_torch_thread():
            # BoTorch retries a failed acquisition optimisation itself and says so with a RuntimeWarning.
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"botorch\.")
            trials = client.get_next_trials(max_trials=1)
        if not trials:
            raise RuntimeError("Ax generated no trial")
        return {name: float(value) for name, value in next(iter(trials.values())).items()}  # type: ignore[arg-type]


class AxBackend(SearchBackend):
    """Ax Bayesian optimisation over the λ, rebuilt from the store's history on every ask (see ``AxSampler``);
    of every objective at once on a multi-objective study."""

    algorithm = "ax"
    categorical = False
    searches_params = False
    requires = ("ax",)
    startup_trials = AX_INIT_TRIALS

    def sampler(self, stream: int = 0) -> BaseSampler:
        # The seed already varies per trial number, which parallel workers never share.
        objective = self.spec.objective
        space = {k: d for k, d in self.search_space().items() if isinstance(d, FloatDistribution)}  # λ only here
        return AxSampler(space, metric=objective.metric,
                         metrics=objective.metrics() if objective.multi else None, seed=self._seed(),
                         init_trials=self.startup_trials or 1)
