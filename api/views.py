"""Store records → API schemas (the store's dataclasses never leave the API as they are)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.schemas import (
    BestSoFar,
    EpochPublic,
    GpuPublic,
    SanityPublic,
    StudyDetailPublic,
    StudyPublic,
    TrialDetailPublic,
    TrialPublic,
    WorkerPublic,
)
from storage import EpochRecord, SanityRecord, StudyRecord, TrialRecord, WorkerRecord
from tuner.analysis.pareto import ParetoSoFar
from tuner.execution.liveness import device_label, no_worker_warning, worker_alive
from tuner.spec import primary_metric


def study_public(study: StudyRecord, pareto: ParetoSoFar | None = None) -> StudyPublic:
    """The study; ``pareto``: a multi-objective study's front so far (``tuner.analysis.pareto.pareto_so_far``)."""
    spec = study.spec
    return StudyPublic(
        id=study.id, name=study.name, status=study.status, status_reason=study.status_reason, owner=study.owner,
        workload=str((spec.get("workload") or {}).get("name", "")),
        metric=primary_metric(spec),
        direction=study.direction, n_trials=study.n_trials, created_at=study.created_at,
        updated_at=study.updated_at, pareto=pareto,
    )


def study_detail(study: StudyRecord, status: dict[str, Any], workers_alive: int = 0) -> StudyDetailPublic:
    """The study with where it stands (``tuner.analysis.documents.study_status``) and the live workers."""
    pareto = None if status["pareto"] is None else ParetoSoFar.model_validate(status["pareto"])
    public = study_public(study, pareto)
    return StudyDetailPublic(
        **public.model_dump(exclude={"pareto"}), pareto=pareto, spec=study.spec, counts=status["counts"],
        workers_alive=workers_alive, warning=no_worker_warning(study.status, workers_alive),
        best=None if status["best"] is None else BestSoFar.model_validate(status["best"]),
    )


def sanity_public(sanity: SanityRecord | None) -> SanityPublic | None:
    if sanity is None:
        return None
    return SanityPublic(passed=sanity.passed, reason=sanity.reason, attempt=sanity.attempt, figures=sanity.figures)


def trial_public(trial: TrialRecord, sanity: SanityRecord | None) -> TrialPublic:
    seconds = None
    if trial.started_at is not None and trial.finished_at is not None:
        seconds = (trial.finished_at - trial.started_at).total_seconds()
    return TrialPublic(
        number=trial.number, state=trial.state, lambdas=trial.params, value=trial.value, attempt=trial.attempt,
        worker=trial.worker_id, reason=trial.reason, sanity=sanity_public(sanity), started_at=trial.started_at,
        finished_at=trial.finished_at, heartbeat_at=trial.heartbeat_at, seconds=seconds,
    )


def trial_detail(trial: TrialRecord, sanity: SanityRecord | None, epochs: list[EpochRecord]) -> TrialDetailPublic:
    curves: dict[str, dict[str, list[float | None]]] = {}
    series: dict[str, list[float | None]] = {}
    for i, record in enumerate(epochs):
        for key, value in record.metrics.items():
            if key == "epoch":
                continue
            if isinstance(value, dict):
                by_task = curves.setdefault(key, {})
                for task, x in value.items():
                    by_task.setdefault(task, [None] * i).append(_number(x))
            else:
                series.setdefault(key, [None] * i).append(_number(value))
        for by_task in curves.values():  # a task missing from this epoch still gets its slot
            for values in by_task.values():
                values.extend([None] * (i + 1 - len(values)))
        for values in series.values():
            values.extend([None] * (i + 1 - len(values)))
    return TrialDetailPublic(
        **trial_public(trial, sanity).model_dump(), result=trial.result,
        epochs=[EpochPublic(epoch=e.epoch, metrics=e.metrics) for e in epochs], curves=curves, series=series,
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def worker_public(worker: WorkerRecord, alive_s: float, now: datetime | None = None) -> WorkerPublic:
    now = now or datetime.now(UTC)
    return WorkerPublic(
        id=worker.id, host=worker.host, device=worker.device, pid=worker.pid,
        gpu=GpuPublic(**worker.gpu) if worker.gpu else None, device_label=device_label(worker.device, worker.gpu),
        alive=worker_alive(worker, alive_s, now),
        started_at=worker.started_at, last_heartbeat_at=worker.last_heartbeat_at,
        current_study_id=worker.current_study_id, current_trial=worker.current_trial_number,
    )
