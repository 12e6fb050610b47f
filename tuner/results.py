"""What a trial produced, as plain records: its epochs' figures, its sanity verdict, its result and its values.

The engine writes them and everything above and beside it reads them (the worker records them, the analysis
and the search backends read their values), so they live here, torch-free, between the spec and the engine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tuner.spec.objectives import TRAIN_SECONDS, aux_task_of

TrialStatus = Literal["complete", "pruned", "failed_sanity"]


def json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: report them as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


@dataclass
class SanityResult:
    """Outcome of the gate; ``reason`` says in words which condition failed, with the figures."""

    passed: bool
    reason: str = ""
    failed_checks: list[str] = field(default_factory=list)
    steps: int = 0
    initial_loss: float = math.nan
    final_loss: float = math.nan
    loss_drop: float = math.nan
    main_accuracy: float = math.nan
    task_losses: dict[str, float] = field(default_factory=dict)
    disconnected: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass
class EpochMetrics:
    """Figures of one epoch; losses are unweighted, per task (``main`` and each aux), plus ``total``."""

    epoch: int
    train_loss: dict[str, float]
    val_loss: dict[str, float]
    val_accuracy: float
    seconds: float
    #: The main task on the target domain's validation split (``accuracy``, ``loss``), when the workload has one.
    target: dict[str, float] = field(default_factory=dict)

    def objective(self, metric: str) -> float:
        return epoch_value(self, metric)


@dataclass
class TrialResult:
    """Everything one trial produced; ``value`` is the objective (best epoch's main-task val metric)."""

    status: TrialStatus
    lambdas: dict[str, float]
    seed: int
    metric: str
    direction: str
    sanity: SanityResult | None = None
    value: float | None = None
    best_epoch: int | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    test_loss: dict[str, float] = field(default_factory=dict)
    epochs: list[EpochMetrics] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = ""
    #: Task affinity measured while training (``tuner.engine.callbacks.affinity``), or None when the probe is off.
    affinity: dict[str, Any] | None = None
    #: The main task on the target domain's test split at the best epoch (``accuracy``, ``loss``), if it has one.
    target_test: dict[str, float] = field(default_factory=dict)
    #: How the trunk started from a saved model trained (``freeze``, ``finetune``, …); None without ``trunk``.
    trunk_mode: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sanity"] = self.sanity.to_dict() if self.sanity else None
        return json_safe(d)


def epoch_value(metrics: EpochMetrics, metric: str) -> float:
    """``metric`` as measured in one epoch (NaN when the epoch did not measure it)."""
    task = aux_task_of(metric)
    if task is not None:
        return float(metrics.val_loss.get(task, math.nan))
    if metric == "val_accuracy":
        return metrics.val_accuracy
    if metric == "val_loss":
        return metrics.val_loss["main"]
    value = metrics.target.get(metric[len("target_val_"):]) if metric.startswith("target_val_") else None
    return math.nan if value is None else float(value)


def trial_values(metrics: Sequence[str], result: TrialResult) -> list[float]:
    """The value of each of ``metrics`` for a finished trial: at its best epoch (``train_seconds``: whole trial).

    Raises:
        ValueError: the trial has no best epoch, or an objective is not finite there (the message says which).
    """
    best = next((m for m in result.epochs if m.epoch == result.best_epoch), None)
    if best is None:
        raise ValueError("the trial has no best epoch to read its objectives from")
    values = [float(result.seconds) if m == TRAIN_SECONDS else epoch_value(best, m) for m in metrics]
    bad = [m for m, v in zip(metrics, values, strict=True) if not math.isfinite(v)]
    if bad:
        raise ValueError(f"objective(s) {bad} not finite at the best epoch ({best.epoch})")
    return values
