"""``random``: uniform (or log-uniform) random λ."""

from __future__ import annotations

from optuna.samplers import BaseSampler, RandomSampler

from tuner.search._base import SearchBackend


class RandomBackend(SearchBackend):
    """Independent random λ within each task's bounds."""

    algorithm = "random"

    def sampler(self, stream: int = 0) -> BaseSampler:
        return RandomSampler(seed=self._seed(stream))
