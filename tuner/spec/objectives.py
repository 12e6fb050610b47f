"""What a study optimises: the metric names a spec may use and their natural directions.

A study has one primary objective (``objective.metric``): it picks each trial's best epoch, feeds the pruner and
ranks trials in a single-objective study. ``objective.also`` adds more objectives; with any, the study is
multi-objective and its answer is the Pareto front (``storage._pareto``), not one best trial.

Metric names:

- ``val_accuracy`` (maximize), ``val_loss`` (minimize): the main task on the validation split;
- ``target_val_accuracy``, ``target_val_loss``: the main task on the target domain's labelled validation split
  (workloads with a target domain, see ``tuner.engine.domain``);
- ``val_loss:<task>`` (minimize): aux task ``<task>``'s own unweighted validation loss;
- ``train_seconds`` (minimize): the trial's wall-clock time, sanity gate included.

Every value but ``train_seconds`` is read at the best epoch by the primary objective, so one trial is one model
(``tuner.results.trial_values``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

#: Metrics measured every epoch; any of them can be the primary objective.
EPOCH_METRICS: dict[str, str] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "target_val_accuracy": "maximize",
    "target_val_loss": "minimize",
}
AUX_LOSS_PREFIX = "val_loss:"
TRAIN_SECONDS = "train_seconds"


def natural_direction(metric: str) -> str | None:
    """The direction ``metric`` is optimised in, or None for a name that is not a metric."""
    if metric in EPOCH_METRICS:
        return EPOCH_METRICS[metric]
    if metric == TRAIN_SECONDS or (metric.startswith(AUX_LOSS_PREFIX) and len(metric) > len(AUX_LOSS_PREFIX)):
        return "minimize"
    return None


def aux_task_of(metric: str) -> str | None:
    """The aux task a ``val_loss:<task>`` metric names, else None."""
    return metric[len(AUX_LOSS_PREFIX):] if metric.startswith(AUX_LOSS_PREFIX) else None


class ObjectiveTerm(BaseModel):
    """One more objective of a multi-objective study: a metric and its direction (the natural one if left out)."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    direction: Literal["maximize", "minimize"] | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if natural_direction(metric) is None:
            raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(EPOCH_METRICS)}, {TRAIN_SECONDS}, "
                             f"{AUX_LOSS_PREFIX}<aux task>")
        return metric

    @model_validator(mode="after")
    def _natural_direction(self) -> ObjectiveTerm:
        natural = natural_direction(self.metric)
        if self.direction is None:
            self.direction = natural  # type: ignore[assignment]
        elif self.direction != natural:
            raise ValueError(f"{self.metric} is to be {natural}d; set direction: {natural}")
        return self
