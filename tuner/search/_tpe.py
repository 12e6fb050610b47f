"""``tpe``: Optuna's multivariate Tree-structured Parzen Estimator."""

from __future__ import annotations

from optuna.samplers import BaseSampler, TPESampler

from tuner.search._base import SearchBackend


class TPEBackend(SearchBackend):
    """Multivariate TPE (models the λ jointly), 10 random start-up trials, constant liar for parallel workers."""

    algorithm = "tpe"
    startup_trials = 10

    def sampler(self, stream: int = 0) -> BaseSampler:
        return TPESampler(multivariate=True, constant_liar=True, seed=self._seed(stream),
                          n_startup_trials=self.startup_trials or 1)
