"""``qmc``: a scrambled Sobol sequence over the λ box (needs scipy)."""

from __future__ import annotations

from optuna.samplers import BaseSampler, QMCSampler

from tuner.search._base import SearchBackend, quiet_experimental


class QMCBackend(SearchBackend):
    """Scrambled Sobol points; the position in the sequence is kept in the study, so workers share one sequence.

    Every worker must use the same seed (the scrambling), so ``stream`` is ignored. Optuna reads and bumps the
    position without a transaction, so two workers asking at the same instant may get the same point.
    """

    algorithm = "qmc"
    categorical = False
    requires = ("scipy",)

    def sampler(self, stream: int = 0) -> BaseSampler:
        with quiet_experimental():
            return QMCSampler(qmc_type="sobol", scramble=True, seed=self._seed())
