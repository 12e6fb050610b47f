"""A study's task affinity: per-trial table, per-task summary, the TAG matrix, and advice (no torch here).

Each trial stores the averages its probe measured (``tuner.engine.callbacks.affinity``). An aux task's head only
learns when
its λ > 0, and a lookahead step through an untrained head says nothing about the task, so a task's affinity
is averaged over the trials that trained it (λ_k > 0); a matrix entry i→j over the trials that trained both.
A task whose mean affinity to the main task is negative (a step on it alone raises the main task's loss) is a
candidate to drop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage import TrialRecord
from tuner.analysis import stats

MAIN = "main"  # the same name as tuner.engine.losses.MAIN, which would import torch
DROP = "candidate to drop"
KEEP = "keep"


def _lambdas(trial: TrialRecord) -> dict[str, float]:
    full = (trial.result or {}).get("lambdas") or {}
    return {k: float(v) for k, v in {**full, **trial.params}.items() if isinstance(v, int | float)}


def _trained(task: str, lambdas: dict[str, float]) -> bool:
    return task == MAIN or lambdas.get(task, 0.0) > 0


def affinity_report(trials: Sequence[TrialRecord]) -> dict[str, Any] | None:
    """The study's affinity from its trials' results; None when no trial measured any."""
    measured = [t for t in trials if t.result and (t.result.get("affinity") or {}).get("to_main")]
    if not measured:
        return None
    tasks = list(measured[0].result["affinity"]["tasks"])  # type: ignore[index]
    aux = [t for t in tasks if t != MAIN]
    rows = []
    per_task: dict[str, list[float]] = {t: [] for t in aux}
    cells: dict[tuple[str, str], list[float]] = {}
    for trial in measured:
        doc = trial.result["affinity"]  # type: ignore[index]
        lambdas = _lambdas(trial)
        rows.append({"trial": trial.number, "state": trial.state, "value": trial.value, "lambdas": lambdas,
                     "probes": doc.get("probes"), "to_main": doc["to_main"]})
        for task in aux:
            z = doc["to_main"].get(task)
            if z is not None and _trained(task, lambdas):
                per_task[task].append(float(z))
        for src, by_dst in (doc.get("matrix") or {}).items():
            for dst, z in by_dst.items():
                if z is not None and _trained(src, lambdas) and _trained(dst, lambdas):
                    cells.setdefault((src, dst), []).append(float(z))
    summary = []
    for task in aux:
        s = stats.summarize(per_task[task])
        negative = sum(z < 0 for z in per_task[task])
        advice = None if s.mean is None else (DROP if s.mean < 0 else KEEP)
        summary.append({"task": task, "affinity": s.mean, "std": s.std, "trials": s.n, "negative_in": negative,
                        "advice": advice})
    ranking = [row["task"] for row in sorted(summary, key=lambda r: -(r["affinity"] if r["affinity"] is not None
                                                                         else -float("inf")))]
    matrix = {src: {dst: stats.summarize(cells.get((src, dst), [])).mean for dst in tasks} for src in tasks}
    return {"tasks": tasks, "trials": rows, "summary": summary, "ranking": ranking, "matrix": matrix,
            "drop_candidates": [r["task"] for r in summary if r["advice"] == DROP], "advice": advice_lines(summary)}


def advice_lines(summary: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per aux task, in words."""
    lines = []
    for row in summary:
        if row["affinity"] is None:
            lines.append(f"{row['task']}: no trial trained it (λ > 0), so its affinity is unknown")
        elif row["advice"] == DROP:
            lines.append(f"{row['task']}: a step on it alone raises the main task's loss (affinity "
                         f"{row['affinity']:+.3g}, negative in {row['negative_in']}/{row['trials']} trials): "
                         f"{DROP}")
        else:
            lines.append(f"{row['task']}: a step on it alone lowers the main task's loss (affinity "
                         f"{row['affinity']:+.3g}, negative in {row['negative_in']}/{row['trials']} trials): {KEEP}")
    return lines

