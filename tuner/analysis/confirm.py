"""Confirmation: is the best λ set really better than the baseline? Plan it, queue it, report it (no torch).

After the search, the best λ set (and optionally the next best ones), the baseline (every searched λ at its
lowest allowed value: 0 unless the bounds exclude it, as for the control trial) and any learned-weighting arm
of the spec are retrained over n fresh seeds on the same data splits. Only the seed changes: it drives model
initialisation and minibatch order, never the split (every workload derives its split from its own params).
Confirmation seeds start at ``training.seed + CONFIRM_SEED_BASE``, away from the search's (``training.seed +
trial number``), so the winner's lucky seed is not reused.

Every run is a row of ``auxtune_runs`` (``storage._runs``) that any worker claims once its trials are done
(``tuner.execution.runs``), so a confirmation runs in parallel, survives a killed worker, and resumes. The report gives
per arm mean ± std of the validation and test metric, and each arm against the baseline (and the other arms
against the best λ) with Welch's test. The verdict reads the test metric: the validation split chose λ in the
search, the test split never took part in any choice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from storage import RunPlan, RunRecord, Store, StudyRecord, TrialRecord
from tuner.analysis import stats
from tuner.analysis.error_analysis import compare_confusions
from tuner.spec import ConfirmSpec, StudySpec, primary_metric, stored_spec
from tuner.spec.transfer import TRUNK_MODE_PARAM, lambda_params

#: Confirmation seed i is ``training.seed + CONFIRM_SEED_BASE + i``.
CONFIRM_SEED_BASE = 1_000_000
BASELINE, BEST = "baseline", "best"
#: Studies whose search is over: only these can be confirmed.
CONFIRMABLE_STATUSES = ("done", "cancelled")


class ConfirmError(ValueError):
    """A confirmation cannot be queued; ``kind`` is ``search_running``, ``no_result_yet`` or ``multi_objective``."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def wants_confirmation(spec: StudySpec) -> bool:
    """Whether the spec asks for a confirmation after its search (a ``confirm`` block, or reference ``arms``)."""
    return spec.confirm is not None or bool(spec.arms)


def baseline_lambdas(spec: StudySpec) -> dict[str, float]:
    """Every searched λ at its lowest allowed value (0 unless the bounds exclude it); fixed λ stay fixed."""
    return spec.complete_lambdas({t.name: t.lambda_.low for t in spec.searched_tasks()})


def ranked_lambda_sets(spec: StudySpec, trials: Sequence[TrialRecord]) -> list[tuple[int, dict[str, float]]]:
    """Distinct complete λ sets of the complete trials, best first (ties: lower trial number), without the
    baseline's own λ set: ``[(trial number, λ), …]``. With a searched trunk mode, a λ set is distinct per mode
    (the same λ on a frozen and on a fine-tuned trunk are two arms); the baseline trains with the first mode."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    done.sort(key=lambda t: (sign * float(t.value or 0.0), t.number))
    base = baseline_lambdas(spec)
    seen: set[tuple[tuple[tuple[str, float], ...], str | None]] = {(tuple(sorted(base.items())),
                                                                    spec.trunk_mode_of({}))}
    out = []
    for t in done:
        lambdas = spec.complete_lambdas(lambda_params(t.params))
        key = (tuple(sorted(lambdas.items())), spec.trunk_mode_of(t.params))
        if key not in seen:
            seen.add(key)
            out.append((t.number, lambdas))
    return out


def plan_confirmation(spec: StudySpec, trials: Sequence[TrialRecord], seeds: int, top_k: int = 1) -> list[RunPlan]:
    """The runs of a confirmation: baseline, the ``top_k`` best λ sets and the spec's arms, × ``seeds`` seeds.

    Raises:
        ConfirmError: no complete trial has a λ set other than the baseline's.
    """
    ranked = ranked_lambda_sets(spec, trials)[:top_k]
    if not ranked:
        raise ConfirmError("no_result_yet", "the study has no complete trial with a λ set other than the "
                                            "baseline's; nothing to confirm")
    seed_list = [spec.training.seed + CONFIRM_SEED_BASE + i for i in range(seeds)]
    arms: list[tuple[str, str, dict[str, Any], int | None]] = [("baseline", BASELINE, baseline_lambdas(spec), None)]
    # A searched trunk mode (tuner.engine.transfer) goes with its λ set: the runs train as the trial did.
    modes = {t.number: t.params[TRUNK_MODE_PARAM] for t in trials if TRUNK_MODE_PARAM in t.params}
    arms += [("lambda", BEST if rank == 0 else f"rank{rank + 1}",
              {**lambdas, **({TRUNK_MODE_PARAM: modes[number]} if number in modes else {})}, number)
             for rank, (number, lambdas) in enumerate(ranked)]
    arms += [("weighting", arm.name, arm.model_dump(), None) for arm in spec.arms]
    return [RunPlan(kind=kind, arm=arm, params=params, seed=seed, trial_number=number)
            for kind, arm, params, number in arms for seed in seed_list]


def request_confirmation(store: Store, study: StudyRecord, seeds: int | None = None,
                         top_k: int | None = None) -> list[RunRecord]:
    """Queue the confirmation of a finished study (idempotent: stored runs are kept); returns all its runs.

    ``seeds`` and ``top_k`` default to the spec's ``confirm`` block, else 10 and 1.

    Raises:
        ConfirmError: the search is not over yet, or it has no result to confirm.
    """
    if study.status not in CONFIRMABLE_STATUSES:
        raise ConfirmError("search_running", f"study {study.name!r} is {study.status}; a confirmation retrains "
                                             "the search's answer, so it can start once the study is done (or "
                                             "cancelled)")
    if len(study.directions) != 1:
        raise ConfirmError("multi_objective", f"study {study.name!r} has {len(study.directions)} objectives and no "
                                              "single best λ set to confirm")
    spec = stored_spec(study.spec)
    defaults = spec.confirm or ConfirmSpec()
    plans = plan_confirmation(spec, store.trials(study.id, states=["complete"]), seeds or defaults.seeds,
                              top_k or defaults.top_k)
    return store.enqueue_runs(study.id, plans)


# -- the report ------------------------------------------------------------------------------------------------
def _arm_order(arm: str, kind: str) -> tuple[int, int, str]:
    if arm == BASELINE:
        return (0, 0, arm)
    if kind == "lambda":
        return (1, 0 if arm == BEST else int(arm.removeprefix("rank") or 0), arm)
    return (2, 0, arm)


def _counts(runs: Sequence[RunRecord]) -> dict[str, int]:
    return {s: sum(r.state == s for r in runs) for s in ("queued", "running", "complete", "failed")}


def _arm_doc(arm: str, runs: list[RunRecord]) -> dict[str, Any]:
    first = runs[0]
    done = [r for r in runs if r.state == "complete"]
    doc: dict[str, Any] = {
        "arm": arm, "kind": first.kind, "params": first.params, "trial": first.trial_number,
        "seeds": len(runs), "counts": _counts(runs),
        "val": stats.summarize([r.val_value for r in done]).to_dict(),
        "test": stats.summarize([r.test_value for r in done]).to_dict(),
    }
    learned = [(r.result or {}).get("weighting") for r in done]
    effective = [w["effective_lambdas"] for w in learned if w and w.get("effective_lambdas")]
    if effective:
        doc["effective_lambdas"] = {t: stats.summarize([e.get(t) for e in effective]).mean for t in effective[0]}
    return doc


def _compare(arm: str, against: str, by_arm: dict[str, list[RunRecord]], direction: str) -> dict[str, Any]:
    mine = [r for r in by_arm[arm] if r.state == "complete"]
    ref = [r for r in by_arm[against] if r.state == "complete"]
    return {"arm": arm, "against": against,
            "test": stats.compare([r.test_value for r in mine], [r.test_value for r in ref], direction).to_dict(),
            "val": stats.compare([r.val_value for r in mine], [r.val_value for r in ref], direction).to_dict()}


def _matrices(runs: Sequence[RunRecord]) -> list[list[list[float]]]:
    return [r.result["confusion"] for r in runs if r.state == "complete" and r.result and r.result.get("confusion")]


def error_analysis(by_arm: dict[str, list[RunRecord]]) -> dict[str, Any] | None:
    """Confusion matrices of baseline and best on the test split, summed over seeds, and what changed."""
    if BASELINE not in by_arm or BEST not in by_arm:
        return None
    names = next((r.result.get("class_names") for r in by_arm[BEST] if r.result and r.result.get("class_names")),
                 None)
    return compare_confusions(_matrices(by_arm[BASELINE]), _matrices(by_arm[BEST]), names)


def confirmation_report(study: StudyRecord, runs: Sequence[RunRecord]) -> dict[str, Any]:
    """Everything a confirmation says so far: per arm mean ± std, comparisons, the verdict, error analysis.

    No figure: where the report is served, ``api.dashboard.trust_figures.confirmation_document`` adds it.
    """
    metric = primary_metric(study.spec)
    test_metric = metric.replace("val_", "test_")  # val_accuracy → test_accuracy, target_val_loss → target_test_loss
    by_arm: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_arm.setdefault(r.arm, []).append(r)
    arms = sorted(by_arm, key=lambda a: _arm_order(a, by_arm[a][0].kind))
    counts = _counts(runs)
    comparisons = [_compare(a, BASELINE, by_arm, study.direction) for a in arms if a != BASELINE
                   and BASELINE in by_arm]
    comparisons += [_compare(a, BEST, by_arm, study.direction) for a in arms if a not in (BASELINE, BEST)
                    and BEST in by_arm]
    headline = next((c for c in comparisons if c["arm"] == BEST and c["against"] == BASELINE), None)
    state = "complete" if not counts["queued"] and not counts["running"] else (
        "running" if counts["running"] or counts["complete"] or counts["failed"] else "queued")
    return {
        "study_id": study.id, "study": study.name, "state": state, "counts": counts,
        "metric": test_metric, "val_metric": metric, "direction": study.direction, "alpha": stats.ALPHA,
        "seeds": max((len(v) for v in by_arm.values()), default=0),
        "verdict": headline["test"]["verdict"] if headline else None,
        "arms": [_arm_doc(a, by_arm[a]) for a in arms], "comparisons": comparisons,
        "error_analysis": error_analysis(by_arm),
    }


def confirmation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline of a report (best λ vs baseline on the test metric), as ``/best`` shows it."""
    headline = next((c for c in report["comparisons"] if c["arm"] == BEST and c["against"] == BASELINE), None)
    arms = {a["arm"]: a for a in report["arms"]}
    test = headline["test"] if headline else {}
    return {
        "state": report["state"], "verdict": report["verdict"], "metric": report["metric"], "seeds": report["seeds"],
        "difference": test.get("difference"), "ci_low": test.get("ci_low"), "ci_high": test.get("ci_high"),
        "p_value": test.get("p_value"),
        "baseline": arms[BASELINE]["test"] if BASELINE in arms else None,
        "best": arms[BEST]["test"] if BEST in arms else None,
    }


def verdict_line(report: dict[str, Any]) -> str:
    """One sentence: the best λ set against the baseline, with the figures behind the verdict."""
    s = confirmation_summary(report)
    if s["verdict"] is None:
        return f"confirmation {s['state']}: not enough finished runs for a verdict yet"
    return (f"best λ vs baseline on {s['metric']}: {s['difference']:+.4f} (95 % CI {s['ci_low']:+.4f} … "
            f"{s['ci_high']:+.4f}), Welch p = {s['p_value']:.3g}, {s['best']['n']} vs {s['baseline']['n']} seeds: "
            f"{s['verdict']}")


def stored_confirmation(store: Store, study: StudyRecord) -> dict[str, Any] | None:
    """The report of the study's confirmation, or None when none was queued."""
    runs = store.runs(study.id)
    return confirmation_report(study, runs) if runs else None
