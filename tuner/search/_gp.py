"""``gp``: Optuna's Gaussian-process Bayesian optimisation (needs torch and scipy)."""

from __future__ import annotations

from optuna.samplers import BaseSampler, GPSampler

from tuner.search._base import SearchBackend


class GPBackend(SearchBackend):
    """GP-based Bayesian optimisation (log EI) after 5 start-up trials (controls included); the objective is noisy."""

    algorithm = "gp"
    requires = ("torch", "scipy")
    #: bench/search_quality.py (issue #18): 5 start-up trials (the 2 controls and 3 random) chose better λ than 10
    #: at every budget on synthetic (61.1 / 62.1 / 62.1 vs 59.6 / 61.3 / 62.0 at 10 / 20 / 30 trials).
    startup_trials = 5

    def sampler(self, stream: int = 0) -> BaseSampler:
        return GPSampler(seed=self._seed(stream), deterministic_objective=False,
                         n_startup_trials=self.startup_trials or 1)
