"""λ importance by fANOVA, through Optuna's ``FanovaImportanceEvaluator``.

fANOVA fits a random forest, so its cost grows quickly with the trials it sees (Optuna's defaults, 64 trees of
depth 64, take ~40 s on 1 000 trials here). The dashboard therefore fits 16 trees of depth 8 on at most
``MAX_TRIALS`` complete trials spread evenly over the study (not the best ones: importance is a variance
decomposition over the whole search), and recomputes only when the number of complete trials grew: every new
trial while there are fewer than ``EXACT_UP_TO``, then every 5 %. ``optuna.importance`` (and scikit-learn) is
imported on first use only.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from api.dashboard.sampling import spread
from api.dashboard.snapshot import StudySnapshot

MIN_TRIALS = 4
MAX_TRIALS = 300
EXACT_UP_TO = 50
N_TREES, MAX_DEPTH = 16, 8
STUDY_NAME = "auxtune-importance"


class _QuietScratchStudy(logging.Filter):
    """Optuna logs every in-memory study it creates; ours is a scratch study per computation."""

    def filter(self, record: logging.LogRecord) -> bool:
        return STUDY_NAME not in record.getMessage()


logging.getLogger("optuna.storages._in_memory").addFilter(_QuietScratchStudy())


@dataclass(frozen=True)
class Importance:
    """Importance of each searched λ (summing to 1, largest first), from ``n_trials`` complete trials;
    ``values`` is ``None`` when there are too few trials (``reason`` says why)."""

    values: dict[str, float] | None
    n_trials: int
    reason: str = ""


def fanova(snapshot: StudySnapshot) -> Importance:
    """fANOVA importance of the snapshot's searched λ (see the module's docstring)."""
    complete = snapshot.complete
    if not snapshot.dims:
        return Importance(None, len(complete), "nothing is searched")
    usable = [p for p in complete if all(isinstance(p.params.get(d.name), int | float) for d in snapshot.dims)]
    if len(usable) < MIN_TRIALS:
        return Importance(None, len(usable), f"needs {MIN_TRIALS} complete trials, {len(usable)} so far")
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    sample = spread(usable, (), MAX_TRIALS)
    dists = {d.name: FloatDistribution(d.low, d.high, log=d.log and d.low > 0) for d in snapshot.dims}
    trials = [optuna.trial.create_trial(params={d.name: d.clip(float(p.params[d.name])) for d in snapshot.dims},
                                        distributions=dists, value=float(p.value))  # type: ignore[arg-type]
              for p in sample]
    study = optuna.create_study(study_name=STUDY_NAME, direction="maximize" if snapshot.maximize else "minimize")
    study.add_trials(trials)
    evaluator = FanovaImportanceEvaluator(n_trees=N_TREES, max_depth=MAX_DEPTH, seed=0)
    values = get_param_importances(study, evaluator=evaluator, params=list(dists))
    return Importance({k: float(v) for k, v in values.items()}, len(sample))


class ImportanceCache:
    """The last importance per study, reused until enough new trials completed (see the module's docstring)."""

    def __init__(self) -> None:
        self._items: dict[int, tuple[int, Importance]] = {}
        self._lock = threading.Lock()

    def get(self, snapshot: StudySnapshot) -> Importance:
        n = len(snapshot.complete)
        with self._lock:
            cached = self._items.get(snapshot.study.id)
        if cached is not None:
            seen, result = cached
            if n == seen or (seen >= EXACT_UP_TO and seen <= n < seen * 1.05):
                return result
        result = fanova(snapshot)
        with self._lock:
            self._items[snapshot.study.id] = (n, result)
        return result
