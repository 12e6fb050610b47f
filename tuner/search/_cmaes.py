"""``cmaes``: Optuna's CMA-ES sampler (needs the ``cmaes`` package).

With one searched λ, CMA-ES still samples relatively: since optuna PR #6228 (with a cmaes release that
supports 1-D, checked here on optuna 5.0 + cmaes 0.13) it runs a 1-D CMA-ES (population 4). Older optuna fell
back to its independent sampler, i.e. random search, for a 1-D space. Pruned trials are ignored
by CMA-ES (``consider_pruned_trials=False``): a generation waits for complete trials.
"""

from __future__ import annotations

from optuna.samplers import BaseSampler, CmaEsSampler, RandomSampler

from tuner.search._base import SearchBackend


class CmaEsBackend(SearchBackend):
    """CMA-ES from the centre of the λ box; the first trial (and any λ CMA-ES skips) is sampled at random."""

    algorithm = "cmaes"
    categorical = False
    requires = ("cmaes",)

    def sampler(self, stream: int = 0) -> BaseSampler:
        seed = self._seed(stream)
        return CmaEsSampler(seed=seed, independent_sampler=RandomSampler(seed=seed))
