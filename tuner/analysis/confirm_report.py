"""What a confirmation says: per arm mean ± std, the comparisons, the verdicts, the ablation, the estimates.

The analysis follows how the runs were planned (``tuner.analysis.confirm``), which every run carries in its
params: ``@design`` (the looks: ``round_seeds``, ``max_seeds``; ``ablate``) and, where every seed redrew the
data split, ``@split_seed``.

- runs with ``@split_seed``: the paired t-test over the redrawn splits (``paired_splits``), or with ``test:
  corrected`` the corrected resampled t-test (``resampled``: ``stats.compare_paired`` with ``n_test/n_train``);
- runs with ``@design`` on one fixed split: the paired t-test (``paired``);
- runs stored before either existed: Welch's t-test, as they were reported then.

The verdict reads the test metric (the validation split chose λ in the search; the test split took part in no
choice). Best λ vs baseline and each ablation arm vs best λ decide when a sequential confirmation stops
(``tuner.analysis.sequential``); every other comparison is read at the last look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from storage import RunRecord, StudyRecord
from tuner.analysis import stats
from tuner.analysis.error_analysis import compare_confusions
from tuner.analysis.sequential import SequentialState, decide, look_sizes, stop_sentence
from tuner.spec import SpecError, primary_metric, stored_spec

BASELINE, BEST = "baseline", "best"
#: An ablation arm is named ``ablate_<task>``: the best λ set with that task's λ at 0.
ABLATE_PREFIX = "ablate_"
#: Keys of a run's params that describe the confirmation, not the λ (task names cannot start with ``@``).
DESIGN_PARAM, SPLIT_SEED_PARAM = "@design", "@split_seed"
#: The best trial's searched training params (``search.params``), which every run of the confirmation trains with.
TRAIN_PARAMS_PARAM = "@params"
HELPS, NO_EFFECT, HURTS = "helps", "no detectable effect", "hurts"
_METHOD_WORDS = {"welch": "Welch", "paired": "paired t-test", "paired_splits": "paired t-test over redrawn splits",
                 "resampled": "corrected resampled t-test"}
_TASK_VERDICTS = {stats.BETTER: HELPS, stats.NO_DIFFERENCE: NO_EFFECT, stats.WORSE: HURTS}


def run_lambdas(params: dict[str, Any]) -> dict[str, Any]:
    """A run's params without the confirmation's own keys (``@design``, ``@split_seed``)."""
    return {k: v for k, v in params.items() if not k.startswith("@")}


def run_design(runs: Sequence[RunRecord]) -> dict[str, Any] | None:
    """The design of the newest run that has one (None: runs stored before designs existed)."""
    designed = [r for r in runs if isinstance(r.params.get(DESIGN_PARAM), dict)]
    return max(designed, key=lambda r: r.id).params[DESIGN_PARAM] if designed else None


def report_method(runs: Sequence[RunRecord], design: dict[str, Any] | None) -> str:
    """``welch`` (runs from before designs), ``paired`` (one split), ``paired_splits`` (redrawn splits, paired
    t-test) or ``resampled`` (redrawn splits, Nadeau & Bengio's corrected resampled t-test)."""
    if design is None:
        return "welch"
    if not any(SPLIT_SEED_PARAM in r.params for r in runs):
        return "paired"
    return "resampled" if design.get("test") == "corrected" else "paired_splits"


def _arm_order(arm: str, kind: str) -> tuple[int, int, str]:
    if arm == BASELINE:
        return (0, 0, arm)
    if kind == "lambda":
        return (1, 0 if arm == BEST else int(arm.removeprefix("rank") or 0), arm)
    return (2 if kind == "ablation" else 3, 0, arm)


def _counts(runs: Sequence[RunRecord]) -> dict[str, int]:
    return {s: sum(r.state == s for r in runs) for s in ("queued", "running", "complete", "failed")}


def _arm_doc(arm: str, runs: list[RunRecord]) -> dict[str, Any]:
    first = runs[0]
    done = [r for r in runs if r.state == "complete"]
    doc: dict[str, Any] = {
        "arm": arm, "kind": first.kind, "params": run_lambdas(first.params), "trial": first.trial_number,
        "seeds": len(runs), "counts": _counts(runs),
        "val": stats.summarize([r.val_value for r in done]).to_dict(),
        "test": stats.summarize([r.test_value for r in done]).to_dict(),
    }
    learned = [(r.result or {}).get("weighting") for r in done]
    effective = [w["effective_lambdas"] for w in learned if w and w.get("effective_lambdas")]
    if effective:
        doc["effective_lambdas"] = {t: stats.summarize([e.get(t) for e in effective]).mean for t in effective[0]}
    return doc


def _split_ratio(runs: Sequence[RunRecord]) -> float:
    """``n_test / n_train`` of the runs (Nadeau & Bengio's correction); 1 when no run recorded its sizes."""
    for r in runs:
        doc = r.result or {}
        if doc.get("n_train") and doc.get("n_test"):
            return float(doc["n_test"]) / float(doc["n_train"])
    return 1.0


class _Analysis:
    """The comparisons of one confirmation, on its first n seeds at a given level."""

    def __init__(self, by_arm: dict[str, list[RunRecord]], direction: str, method: str, correction: float):
        self.by_arm, self.direction, self.method, self.correction = by_arm, direction, method, correction
        self.seeds = sorted({r.seed for runs in by_arm.values() for r in runs})

    def complete_seeds(self) -> int:
        """How many leading seeds have every arm's run finished (complete or failed)."""
        finished = {a: {r.seed for r in runs if r.state in ("complete", "failed")} for a, runs in self.by_arm.items()}
        n = 0
        while n < len(self.seeds) and all(self.seeds[n] in done for done in finished.values()):
            n += 1
        return n

    def compare(self, arm: str, against: str, metric: str, n: int, alpha: float) -> stats.Comparison:
        allowed = set(self.seeds[:n])

        def values(a: str) -> dict[int, float | None]:
            return {r.seed: getattr(r, metric) for r in self.by_arm[a] if r.state == "complete" and r.seed in allowed}

        mine, ref = values(arm), values(against)
        if self.method == "welch":
            return stats.compare(list(mine.values()), list(ref.values()), self.direction, alpha, 1 - alpha)
        return stats.compare_paired(mine, ref, self.direction, alpha, 1 - alpha,
                                    self.correction if self.method == "resampled" else 0.0)

    def comparison_doc(self, arm: str, against: str, n: int, alpha: float,
                       test: stats.Comparison | None = None) -> dict[str, Any]:
        test = test or self.compare(arm, against, "test_value", n, alpha)
        return {"arm": arm, "against": against, "method": self.method, "test": test.to_dict(),
                "val": self.compare(arm, against, "val_value", n, alpha).to_dict()}


def _ablation_pairs(by_arm: dict[str, list[RunRecord]], tasks: Sequence[str]) -> list[tuple[str, str | None]]:
    """``(task, arm it is compared with best on)`` per searched task: its ablation arm, the baseline when that is
    the same λ set, None when the best λ set already has the task at 0; a task whose arm is not planned is left
    out."""
    if BEST not in by_arm:
        return []
    best = run_lambdas(by_arm[BEST][0].params)
    base = run_lambdas(by_arm[BASELINE][0].params) if BASELINE in by_arm else None
    pairs: list[tuple[str, str | None]] = []
    for task in tasks:
        if ABLATE_PREFIX + task in by_arm:
            pairs.append((task, ABLATE_PREFIX + task))
        elif float(best.get(task, 0.0)) == 0.0:
            pairs.append((task, None))
        elif base is not None and {**best, task: 0.0} == base:
            pairs.append((task, BASELINE))
    return pairs


def _searched_tasks(study: StudyRecord, by_arm: dict[str, list[RunRecord]]) -> list[str]:
    try:
        return [t.name for t in stored_spec(study.spec).searched_tasks()]
    except SpecError:
        return [a.removeprefix(ABLATE_PREFIX) for a in by_arm if a.startswith(ABLATE_PREFIX)]


def _ablation_doc(task: str, against: str | None, best: dict[str, Any], c: stats.Comparison | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"task": task, "arm": against, "lambda": best.get(task)}
    if c is None:
        return {**doc, "verdict": None, "note": "the best λ set already has this task at 0"}
    return {**doc, "verdict": None if c.verdict is None else _TASK_VERDICTS[c.verdict], "difference": c.difference,
            "ci_low": c.ci_low, "ci_high": c.ci_high, "confidence": c.confidence, "p_value": c.p_value,
            "seeds": c.n_arm, "method": c.method}


def confirmation_report(study: StudyRecord, runs: Sequence[RunRecord]) -> dict[str, Any]:
    """Everything a confirmation says so far: per arm mean ± std, comparisons, the verdict, the per-task ablation
    verdicts, the sequential state, error analysis.

    No figure: where the report is served, ``api.dashboard.trust_figures.confirmation_document`` adds it.
    """
    metric = primary_metric(study.spec)
    test_metric = metric.replace("val_", "test_")  # val_accuracy → test_accuracy, target_val_loss → target_test_loss
    by_arm: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_arm.setdefault(r.arm, []).append(r)
    arms = sorted(by_arm, key=lambda a: _arm_order(a, by_arm[a][0].kind))
    counts = _counts(runs)
    design = run_design(runs)
    method = report_method(runs, design)
    analysis = _Analysis(by_arm, study.direction, method, _split_ratio(runs))
    n_seeds = len(analysis.seeds)
    sizes = look_sizes(int(design["round_seeds"]), int(design["max_seeds"])) if design else [max(n_seeds, 1)]
    # Asked for (ablate), or free: where no task needs an arm of its own (one searched task: best vs baseline is
    # its ablation), every task's verdict is there anyway.
    tasks = _searched_tasks(study, by_arm)
    ablated = _ablation_pairs(by_arm, tasks)
    if not ((design or {}).get("ablate") or any(a.startswith(ABLATE_PREFIX) for a in by_arm)
            or (design and ablated and len(ablated) == len(tasks))):
        ablated = []
    deciding = ([(BEST, BASELINE)] if BEST in by_arm and BASELINE in by_arm else []) + [
        (BEST, against) for _, against in ablated if against is not None]
    compare_at: Callable[[int, float], list[stats.Comparison]] = lambda n, a: [  # noqa: E731
        analysis.compare(arm, ref, "test_value", n, a) for arm, ref in deciding]
    state, decided = decide(sizes, analysis.complete_seeds(), compare_at) if deciding else (
        SequentialState([], [stats.ALPHA], 0, stats.ALPHA, False, "running", None), [])
    final = {pair: c for pair, c in zip(deciding, decided, strict=True)}
    n_at, alpha_at = (state.seeds or analysis.complete_seeds() or n_seeds), state.alpha
    ablation_arms = [a for a in arms if a.startswith(ABLATE_PREFIX)]
    pairs = [(a, BASELINE) for a in arms if a != BASELINE and BASELINE in by_arm and a not in ablation_arms]
    pairs += [(a, BEST) for a in arms if a not in (BASELINE, BEST, *ablation_arms) and BEST in by_arm]
    pairs += [(BEST, a) for a in ablation_arms if BEST in by_arm]  # as the ablation verdict reads it
    comparisons = [analysis.comparison_doc(a, ref, n_at, alpha_at, final.get((a, ref))) for a, ref in pairs]
    headline = final.get((BEST, BASELINE))
    state_name = "complete" if not counts["queued"] and not counts["running"] else (
        "running" if counts["running"] or counts["complete"] or counts["failed"] else "queued")
    best_params = run_lambdas(by_arm[BEST][0].params) if BEST in by_arm else {}
    doc = {
        "study_id": study.id, "study": study.name, "state": state_name, "counts": counts,
        "metric": test_metric, "val_metric": metric, "direction": study.direction, "alpha": stats.ALPHA,
        "seeds": max((len(v) for v in by_arm.values()), default=0),
        "verdict": headline.verdict if headline else None,
        "arms": [_arm_doc(a, by_arm[a]) for a in arms], "comparisons": comparisons,
        "error_analysis": error_analysis(by_arm), "method": method,
        "ablation": [_ablation_doc(t, ref, best_params, final.get((BEST, ref)) if ref else None) for t, ref in ablated],
    }
    if design:
        seq = state.to_dict()
        doc["sequential"] = {**seq, "round_seeds": int(design["round_seeds"]), "max_seeds": int(design["max_seeds"]),
                             "why": stop_sentence(seq, int(design["max_seeds"]))}
    return doc


def _matrices(runs: Sequence[RunRecord]) -> list[list[list[float]]]:
    return [r.result["confusion"] for r in runs if r.state == "complete" and r.result and r.result.get("confusion")]


def error_analysis(by_arm: dict[str, list[RunRecord]]) -> dict[str, Any] | None:
    """Confusion matrices of baseline and best on the test split, summed over seeds, and what changed."""
    if BASELINE not in by_arm or BEST not in by_arm:
        return None
    names = next((r.result.get("class_names") for r in by_arm[BEST] if r.result and r.result.get("class_names")),
                 None)
    return compare_confusions(_matrices(by_arm[BASELINE]), _matrices(by_arm[BEST]), names)


def confirmed_estimate(report: dict[str, Any]) -> dict[str, Any] | None:
    """The best λ set's value over the confirmation's seeds (mean, 95 % CI), validation and test metric."""
    best = next((a for a in report["arms"] if a["arm"] == BEST), None)
    if best is None or not best["val"]["n"]:
        return None
    val, test = stats.mean_interval(best["val"]), stats.mean_interval(best["test"])
    return {"metric": report["val_metric"], **val, "test_metric": report["metric"],
            **{f"test_{k}": v for k, v in test.items()}}


def confirmation_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline of a report (best λ vs baseline on the test metric), as ``/best`` shows it."""
    headline = next((c for c in report["comparisons"] if c["arm"] == BEST and c["against"] == BASELINE), None)
    arms = {a["arm"]: a for a in report["arms"]}
    test = headline["test"] if headline else {}
    sequential = report.get("sequential")
    return {
        "state": report["state"], "verdict": report["verdict"], "metric": report["metric"], "seeds": report["seeds"],
        "difference": test.get("difference"), "ci_low": test.get("ci_low"), "ci_high": test.get("ci_high"),
        "p_value": test.get("p_value"), "confidence": test.get("confidence"),
        "baseline": arms[BASELINE]["test"] if BASELINE in arms else None,
        "best": arms[BEST]["test"] if BEST in arms else None,
        "method": report.get("method", "welch"), "ablation": report.get("ablation", []),
        "estimate": confirmed_estimate(report),
        "why": sequential["why"] if sequential and len(sequential["alphas"]) > 1 else None,  # seeds: auto only
    }


def _ci(low: float | None, high: float | None, confidence: float | None = 0.95) -> str:
    if low is None or high is None:
        return ""
    return f" ({100 * (confidence or 0.95):.3g} % CI {low:+.4f} … {high:+.4f})"


def ablation_lines(report: dict[str, Any]) -> list[str]:
    """One line per searched aux task: ``ear: helps (λ 1.2 → 0: …)``."""
    lines = []
    for row in report.get("ablation", []):
        if row["verdict"] is None:
            lines.append(f"{row['task']}: {row.get('note') or 'not enough finished runs for a verdict yet'}")
            continue
        ci = _ci(row["ci_low"], row["ci_high"], row["confidence"])
        lines.append(f"{row['task']}: {row['verdict']} (best λ set minus the same with {row['task']} at λ = 0: "
                     f"{row['difference']:+.4f} on {report['metric']}{ci}, {_METHOD_WORDS.get(row['method'])} "
                     f"p = {row['p_value']:.3g}, {row['seeds']} seeds)")
    return lines


def verdict_line(report: dict[str, Any]) -> str:
    """One sentence: the best λ set against the baseline, with the figures behind the verdict."""
    s = confirmation_summary(report)
    if s["verdict"] is None:
        return f"confirmation {s['state']}: not enough finished runs for a verdict yet"
    why = f"; {s['why']}" if s["why"] else ""
    ci = _ci(s["ci_low"], s["ci_high"], s["confidence"])
    return (f"best λ vs baseline on {s['metric']}: {s['difference']:+.4f}{ci}, "
            f"{_METHOD_WORDS.get(s['method'], s['method'])} p = {s['p_value']:.3g}, {s['best']['n']} vs "
            f"{s['baseline']['n']} seeds: {s['verdict']}{why}")
