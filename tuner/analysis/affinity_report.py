"""A study's task affinity: per-trial table, per-task summary, the TAG matrix, and advice (no torch here).

Each trial stores the averages its probe measured (``tuner.engine.callbacks.affinity``). An aux task's head only
learns when
its λ > 0, and a lookahead step through an untrained head says nothing about the task, so a task's affinity
is averaged over the trials that trained it (λ_k > 0); a matrix entry i→j over the trials that trained both.
TAG's affinity is an early, cheap and noisy signal (one lookahead step on a small batch). It advises only when it
is clear: the t-based 95 % CI of a task's mean (over its trials) excludes 0, the mean is not negligible (|mean| ≥
``NEGLIGIBLE_AFFINITY``), and the λ slice agrees (the rank correlation of the task's λ with the objective over
the complete trials has the same sign, p < ``SLICE_P``). Then a negative mean makes the task a candidate to drop,
a positive one says keep it; otherwise there is no advice. Once a confirmation ran with ``ablate``, its per-task
verdict decides instead (``hurts``: drop, ``helps``: keep): it measures what the affinity only hints at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage import Store, StudyRecord, TrialRecord
from tuner.analysis import stats

MAIN = "main"  # the same name as tuner.engine.losses.MAIN, which would import torch
DROP = "candidate to drop"
KEEP = "keep"
NO_ADVICE = "no advice"
#: Below this, a mean affinity (a relative change of the main task's loss per lookahead step) is negligible.
NEGLIGIBLE_AFFINITY = 1e-3
#: The λ slice agrees when its rank correlation has the affinity's sign at this p or below.
SLICE_P = 0.1


def _lambdas(trial: TrialRecord) -> dict[str, float]:
    full = (trial.result or {}).get("lambdas") or {}
    return {k: float(v) for k, v in {**full, **trial.params}.items() if isinstance(v, int | float)}


def _trained(task: str, lambdas: dict[str, float]) -> bool:
    return task == MAIN or lambdas.get(task, 0.0) > 0


def lambda_slice(trials: Sequence[TrialRecord], task: str, direction: str) -> tuple[float | None, float | None]:
    """Spearman's rank correlation of the task's λ with the objective (signed: > 0 means a higher λ did better)
    over the complete trials, and its p-value; None while fewer than 5 trials or a constant λ or value."""
    points = [(_lambdas(t).get(task), t.value) for t in trials if t.state == "complete" and t.value is not None]
    points = [(lam, v) for lam, v in points if lam is not None]
    if len(points) < 5 or len({p[0] for p in points}) < 2 or len({p[1] for p in points}) < 2:
        return None, None
    from scipy import stats as scipy_stats

    sign = 1.0 if direction == "maximize" else -1.0
    rho, p = scipy_stats.spearmanr([p[0] for p in points], [sign * float(p[1]) for p in points])
    return float(rho), float(p)


def _advice(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(advice, what it rests on)`` of one task's row."""
    verdict = row.get("ablation")
    if verdict is not None:
        return {"hurts": DROP, "helps": KEEP}.get(verdict, NO_ADVICE), "ablation"
    mean, low, high, rho, p = (row["affinity"], row["ci_low"], row["ci_high"], row["slice_rho"], row["slice_p"])
    if mean is None:
        return None, None
    clear = low is not None and (low > 0 or high < 0) and abs(mean) >= NEGLIGIBLE_AFFINITY
    agrees = rho is not None and p is not None and p <= SLICE_P and (rho > 0) == (mean > 0)
    if clear and agrees:
        return (DROP if mean < 0 else KEEP), "affinity"
    return NO_ADVICE, "affinity"


def affinity_report(trials: Sequence[TrialRecord], direction: str = "maximize",
                    ablation: Sequence[dict[str, Any]] = ()) -> dict[str, Any] | None:
    """The study's affinity from its trials' results; None when no trial measured any.

    ``ablation``: a confirmation's per-task verdicts (``confirmation_report(...)["ablation"]``); where a task has
    one, the advice rests on it.
    """
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
        interval = stats.mean_interval(s.to_dict())
        rho, p = lambda_slice(trials, task, direction)
        row = {"task": task, "affinity": s.mean, "std": s.std, "trials": s.n,
               "negative_in": sum(z < 0 for z in per_task[task]), "ci_low": interval["ci_low"],
               "ci_high": interval["ci_high"], "slice_rho": rho, "slice_p": p, "ablation": None}
        summary.append(row)
    ranking = [row["task"] for row in sorted(summary, key=lambda r: -(r["affinity"] if r["affinity"] is not None
                                                                         else -float("inf")))]
    matrix = {src: {dst: stats.summarize(cells.get((src, dst), [])).mean for dst in tasks} for src in tasks}
    report = {"tasks": tasks, "trials": rows, "summary": summary, "ranking": ranking, "matrix": matrix}
    return with_ablation(report, ablation)


def with_ablation(report: dict[str, Any], ablation: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report with its advice (re)decided, on the confirmation's ablation verdicts where a task has one."""
    verdicts = {row["task"]: row.get("verdict") for row in ablation}
    summary = []
    for row in report["summary"]:
        row = {**row, "ablation": verdicts.get(row["task"])}
        advice, advice_from = _advice(row)
        keys = ("task", "affinity", "std", "trials", "negative_in")  # the order of the API's schema
        summary.append({**{k: row[k] for k in keys}, "advice": advice,
                        **{k: v for k, v in row.items() if k not in keys and k not in ("advice", "advice_from")},
                        "advice_from": advice_from})
    return {**report, "summary": summary, "drop_candidates": [r["task"] for r in summary if r["advice"] == DROP],
            "advice": advice_lines(summary)}


def _affinity_words(row: dict[str, Any]) -> str:
    ci = "" if row["ci_low"] is None else f", 95 % CI {row['ci_low']:+.2g} … {row['ci_high']:+.2g}"
    return f"affinity {row['affinity']:+.3g}{ci}, negative in {row['negative_in']}/{row['trials']} trials"


def advice_lines(summary: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per aux task, in words: the advice and what it rests on."""
    lines = []
    for row in summary:
        task = row["task"]
        if row["advice_from"] == "ablation":
            lines.append(f"{task}: the confirmation's ablation says it {row['ablation']}: {row['advice']}")
        elif row["affinity"] is None:
            lines.append(f"{task}: no trial trained it (λ > 0), so its affinity is unknown")
        elif row["advice"] != NO_ADVICE:
            effect = "raises" if row["advice"] == DROP else "lowers"
            lines.append(f"{task}: a step on it alone {effect} the main task's loss ({_affinity_words(row)}), and the "
                         f"λ slice agrees (rank correlation {row['slice_rho']:+.2f}): {row['advice']}")
        else:
            lines.append(f"{task}: {NO_ADVICE} ({_affinity_words(row)}); the affinity advises only when its CI "
                         f"excludes 0, |mean| ≥ {NEGLIGIBLE_AFFINITY:g} and the λ slice agrees; confirm with "
                         "--ablate for a verdict")
    return lines



def study_affinity(store: Store, study: StudyRecord) -> dict[str, Any] | None:
    """The affinity report of a stored study, its advice resting on its confirmation's ablation where there is one
    (what ``GET …/affinity`` and ``auxtune affinity`` give); None when no trial measured affinity."""
    from tuner.analysis.confirm import stored_confirmation

    confirmation = stored_confirmation(store, study)
    return affinity_report(store.trials(study.id, limit=100000), study.direction,
                           (confirmation or {}).get("ablation", []))
