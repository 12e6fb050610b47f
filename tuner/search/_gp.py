"""``gp``: Optuna's Gaussian-process Bayesian optimisation (needs torch and scipy)."""

from __future__ import annotations

from optuna.samplers import BaseSampler, GPSampler

from tuner.search._base import SearchBackend


class GPBackend(SearchBackend):
    """GP-based Bayesian optimisation (log EI) after 10 random start-up trials; the objective is noisy."""

    algorithm = "gp"
    requires = ("torch", "scipy")
    startup_trials = 10

    def sampler(self, stream: int = 0) -> BaseSampler:
        return GPSampler(seed=self._seed(stream), deterministic_objective=False,
                         n_startup_trials=self.startup_trials or 1)
