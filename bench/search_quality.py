"""Which search algorithm chooses the best λ: the TRUE quality of each algorithm's choice at each budget (issue #18).

For each workload, algorithm and study seed, one study of ``max(--budgets)`` trials runs in-process (the search
backend's own sampler on an in-memory Optuna study, controls enqueued first, every trial trained by the engine's
``run_trial`` with the seed a worker gives it: ``training.seed + number``; no store, no service). The λ the search
would answer after the first ``b`` trials (its best validation value) is then retrained on ``--fresh-seeds``
fresh seeds (``CONFIRM_SEED_BASE + training.seed + i``, as a confirmation does) and its mean **test** accuracy is
that choice's true quality. Budgets are read off one study (the samplers do not know the budget), so a budget of
10 is the first 10 trials of the 30-trial study.

Printed: per workload a table, one row per algorithm, one column per budget: the mean ± standard error (over the
study seeds) of the true test accuracy of the choice, then what the search itself showed (its best validation
value, the winner's curse) at the largest budget. ``name:N`` in ``--algorithms`` sets the start-up trials (the
random or space-filling trials before the model, controls included) of ``tpe``, ``gp`` or ``ax``: ``tpe:5``;
``name+re`` turns on ``search.reevaluate`` (top 3, 3 seeds each) and chooses by the best mean: ``gp+re``.

    python bench/search_quality.py [--workloads synthetic,table,digits] [--algorithms tpe,gp,ax,random,cmaes,qmc]
        [--budgets 10,20,30] [--study-seeds 3] [--first-study-seed 0] [--fresh-seeds 6] [--epochs 20]
        [--jsonl out.jsonl]
    python bench/search_quality.py --summarise a.jsonl,b.jsonl   # the tables of earlier (or split) runs

Prints figures; asserts nothing. A study's lines are printed as it ends (``--jsonl`` keeps them too).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from storage.candidates import group, ranked
from tuner.analysis.confirm import CONFIRM_SEED_BASE
from tuner.analysis.stats import compare_paired
from tuner.engine.loop import run_trial
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.search import make_backend
from tuner.spec import StudySpec, parse_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: The workloads: spec documents without search (set per study), small enough for a laptop.
WORKLOADS: dict[str, dict[str, Any]] = {
    "synthetic": {
        "workload": {"name": "synthetic", "params": {"n_train": 300}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "neutral", "loss": "bce"},
                      {"name": "harmful", "loss": "mse"}],
        "training": {"batch_size": 32, "lr": 0.003},
    },
    "table": {
        "workload": {"name": "table", "params": {"data": str(EXAMPLES / "table" / "data.csv"), "label": "breed",
                                                  "attributes": str(EXAMPLES / "table" / "attributes.csv"),
                                                  "split_seed": 0}},
        "aux_tasks": [{"name": "floppy_ears", "loss": "bce"}, {"name": "long_hair", "loss": "bce"},
                      {"name": "large", "loss": "bce"}],
        "training": {"batch_size": 16, "lr": 0.01},
    },
    "digits": {
        "workload": {"name": "digits", "params": {"n_train": 300, "n_val": 300, "split_seed": 0}},
        "aux_tasks": [{"name": "loop", "loss": "bce"}, {"name": "vertical", "loss": "bce"},
                      {"name": "curvy", "loss": "bce"}, {"name": "symmetric", "loss": "bce"}],
        "training": {"batch_size": 32, "lr": 0.003},
    },
}


def study_spec(workload: str, algorithm: str, n_trials: int, study_seed: int, epochs: int,
               reevaluate: bool = False) -> StudySpec:
    doc = json.loads(json.dumps(WORKLOADS[workload]))
    doc["name"] = f"quality-{workload}-{algorithm}-{study_seed}"
    doc["search"] = {"algorithm": algorithm, "n_trials": n_trials, "seed": study_seed}
    if reevaluate:
        doc["search"]["reevaluate"] = {"top_k": 3, "seeds": 3}
    doc["training"].update(epochs=epochs, seed=1000 * study_seed)  # independent training noise per study seed
    doc["affinity"] = {"every": 0}  # the probe changes no training; it only costs time here
    return parse_spec(doc)


def run_study(prep: PreparedStudy, algorithm: str, startup: int | None) -> list[tuple[float, dict[str, float]]]:
    """Every trial's (validation value, λ), in trial order; failed trials as (nan, λ)."""
    spec = prep.spec
    backend = make_backend(spec)
    if startup is not None:
        backend.startup_trials = startup
    study = optuna.create_study(direction=str(spec.objective.direction), sampler=backend.sampler(0),
                                pruner=backend.pruner())
    backend.enqueue_controls(study)
    out: list[tuple[float, dict[str, float]]] = []
    for _ in range(backend.max_trials()):
        trial = study.ask()  # as a worker's claim: a new trial, then the backend's suggest (re-evaluation first)
        lambdas = {k: float(v) for k, v in backend.suggest(trial).items()}
        result = run_trial(prep, lambdas, seed=spec.training.seed + trial.number)
        value = result.value if result.status == "complete" and result.value is not None else math.nan
        if value == value:
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        out.append((value, lambdas))
    return out


class Truth:
    """The true quality of a λ set: mean test accuracy over fresh seeds, memoised."""

    def __init__(self, prep: PreparedStudy, fresh_seeds: int):
        self.prep, self.fresh_seeds = prep, fresh_seeds
        self._known: dict[tuple[tuple[str, float], ...], float] = {}

    def __call__(self, lambdas: dict[str, float]) -> float:
        key = tuple(sorted((k, round(v, 6)) for k, v in lambdas.items()))
        if key not in self._known:
            tests = [run_trial(self.prep, lambdas, seed=CONFIRM_SEED_BASE + i).test_accuracy
                     for i in range(self.fresh_seeds)]
            self._known[key] = statistics.fmean(t for t in tests if t is not None)
        return self._known[key]


def chosen(trials: list[tuple[float, dict[str, float]]], budget: int, by_mean: bool) -> tuple[float, dict[str, float]]:
    """The (validation value, λ) the study answers with after its first ``budget`` trials (maximised metric): the
    best trial, or ``by_mean`` the distinct λ set of the best mean (``storage.candidates``, as ``/best`` does)."""
    done = [t for t in trials[:budget] if t[0] == t[0]]
    if by_mean:
        top = ranked(group((i, lam, value, False) for i, (value, lam) in enumerate(done)), "maximize")[0]
        return top.mean, dict(top.params)
    return max(done, key=lambda t: t[0])


def mean_se(values: list[float]) -> str:
    if not values:
        return "-"
    m = statistics.fmean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{100 * m:5.1f} ± {100 * se:3.1f}"


def bench_workload(workload: str, args: argparse.Namespace, sink: Any) -> list[dict[str, Any]]:
    budgets = sorted(args.budgets)
    lines: list[dict[str, Any]] = []
    truth = Truth(prepare(study_spec(workload, "random", 2, 0, args.epochs), "cpu"), args.fresh_seeds)
    for algo in args.algorithms:
        name, _, startup = algo.partition(":")
        name, re_, _ = name.partition("+re")
        for seed in range(args.first_study_seed, args.first_study_seed + args.study_seeds):
            spec = study_spec(workload, name, budgets[-1], seed, args.epochs, reevaluate=bool(re_))
            prep = prepare(spec, "cpu")
            start = time.perf_counter()
            trials = run_study(prep, name, int(startup) if startup else None)
            search_s = time.perf_counter() - start
            line: dict[str, Any] = {"workload": workload, "algorithm": algo, "study_seed": seed,
                                    "epochs": args.epochs, "fresh_seeds": args.fresh_seeds,
                                    "search_s": round(search_s, 1), "budgets": {}}
            for b in budgets:
                value, lambdas = chosen(trials, b, by_mean=bool(re_))
                line["budgets"][str(b)] = {"shown": value, "true": truth(lambdas), "lambdas": lambdas}
            lines.append(line)
            print(json.dumps(line), flush=True)
            if sink is not None:
                sink.write(json.dumps(line) + "\n")
                sink.flush()
    line = {"workload": workload, "baseline": truth({t["name"]: 0.0 for t in WORKLOADS[workload]["aux_tasks"]}),
            "epochs": args.epochs, "fresh_seeds": args.fresh_seeds}
    lines.append(line)
    if sink is not None:
        sink.write(json.dumps(line) + "\n")
    return lines


def paired(arm: dict[int, float], reference: dict[int, float]) -> str:
    """``arm − reference`` paired by study seed, in points: the mean difference, its 95 % t interval and the
    paired t-test's two-sided p (``tuner.analysis.stats.compare_paired``, the confirmation's own test)."""
    c = compare_paired(arm, reference, "maximize")
    if c.p_value is None or c.difference is None or c.ci_low is None or c.ci_high is None:
        return f"- (n={c.n_arm})"
    return (f"{100 * c.difference:+.1f} [{100 * c.ci_low:+.1f}, {100 * c.ci_high:+.1f}] p={c.p_value:.3f} "
            f"(n={c.n_arm})")


def report(workload: str, lines: list[dict[str, Any]]) -> None:
    """The table of one workload from its study lines (this run's, or ``--summarise``'s files): per algorithm and
    budget the mean ± se of the chosen λ's true accuracy, then each algorithm against ``random`` paired by study
    seed (the same seed gives both the same training seeds and the same controls)."""
    studies = [ln for ln in lines if ln.get("workload") == workload and "algorithm" in ln]
    bases = [ln["baseline"] for ln in lines if ln.get("workload") == workload and "baseline" in ln]
    if not studies:
        return
    budgets = sorted({int(b) for ln in studies for b in ln["budgets"]})
    by: dict[str, dict[int, dict[int, float]]] = {}  # algorithm -> budget -> study seed -> true
    shown: dict[str, list[float]] = {}
    for ln in studies:
        for b, got in ln["budgets"].items():
            by.setdefault(ln["algorithm"], {}).setdefault(int(b), {})[ln["study_seed"]] = got["true"]
        shown.setdefault(ln["algorithm"], []).append(ln["budgets"][str(budgets[-1])]["shown"])
    seeds = sorted({ln["study_seed"] for ln in studies})
    base = f"; λ = 0 baseline: {100 * bases[0]:.1f}" if bases else ""
    fresh = sorted({str(ln.get("fresh_seeds", "?")) for ln in studies})
    epochs = sorted({str(ln.get("epochs", "?")) for ln in studies})
    print(f"\n{workload}: true test accuracy (%) of the chosen λ, mean ± se over {len(seeds)} study seeds "
          f"({'/'.join(fresh)} fresh seeds each, {'/'.join(epochs)} epochs){base}")
    head = "".join(f"{f'{b} trials':>15}" for b in budgets)
    print(f"{'algorithm':<10}{head}{'shown at ' + str(budgets[-1]):>16}")
    for algo, per_budget in by.items():
        print(f"{algo:<10}" + "".join(f"{mean_se(list(per_budget[b].values())):>15}" for b in budgets)
              + f"{mean_se(shown[algo]):>16}")
    if "random" in by:
        print("\nagainst random, paired by study seed: mean difference (points) [95 % CI] paired-t p")
        for algo, per_budget in by.items():
            if algo == "random":
                continue
            print(f"{algo:<10}" + "   ".join(f"{b}: {paired(per_budget[b], by['random'][b])}" for b in budgets))
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default="synthetic,table,digits")
    parser.add_argument("--algorithms", default="tpe,gp,ax,random,cmaes,qmc")
    parser.add_argument("--budgets", default="10,20,30")
    parser.add_argument("--study-seeds", type=int, default=3)
    parser.add_argument("--first-study-seed", type=int, default=0, help="study seeds from this one (split a run)")
    parser.add_argument("--fresh-seeds", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jsonl", default=None, help="also append each study's line to this file")
    parser.add_argument("--summarise", default=None, help="only print the tables of these --jsonl files (a,b,...)")
    args = parser.parse_args()
    args.algorithms = [a for a in args.algorithms.split(",") if a]
    args.budgets = [int(b) for b in args.budgets.split(",")]
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("ax").setLevel(logging.ERROR)
    sink = open(args.jsonl, "a") if args.jsonl else None  # noqa: SIM115 (kept open for the whole run)
    print(f"torch {torch.__version__}, optuna {optuna.__version__}, python {sys.version.split()[0]}", flush=True)
    if args.summarise:
        lines = [json.loads(row) for path in args.summarise.split(",") for row in Path(path).read_text().splitlines()
                 if row.strip()]
        for workload in dict.fromkeys(ln["workload"] for ln in lines):
            report(workload, lines)
        return
    for workload in args.workloads.split(","):
        report(workload, bench_workload(workload, args, sink))


if __name__ == "__main__":
    main()
