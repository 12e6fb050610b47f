"""What pruning saves and what it costs: epochs and wall time against no pruning, and the TRUE quality of the λ each
study chooses (issue #18).

For each pruner setting and study seed, one study (``--trials`` trials of ``--epochs`` epochs on ``synthetic``,
``--algorithm``) runs through the real path: a SQLite store in a temporary folder and an in-process worker (the
worker's claims, batched epoch writes and, with a pruner, its in-memory ``SnapshotPruner``). Measured: the wall time
of the whole study, the epochs trained, and the chosen λ (the study's best trial) retrained on ``--fresh-seeds``
fresh seeds (mean test accuracy: its true quality, as in ``bench/search_quality.py``). A setting is a pruner name,
optionally with a warm-up: ``median`` (the warm-up follows the epochs: ``tuner.search.warmup_epochs``),
``median:2`` (the old fixed 2-epoch warm-up), ``hyperband``, ``none``.

    python bench/pruning.py [--settings none,median,median:2,hyperband] [--study-seeds 3] [--trials 30]
        [--epochs 30] [--fresh-seeds 6] [--algorithm auto]
    python bench/pruning.py --part overhead [--others 30] [--epochs 30]

``--part overhead``: the cost of a pruning decision per epoch, against ``--others`` complete trials on a SQLite
store: Optuna's ``trial.report`` + ``should_prune`` (one write transaction and a read of the study every epoch,
the path before issue #18) against the worker's ``SnapshotPruner`` (in memory; values written with the epochs).

Prints one line per study and a table (mean ± se over study seeds; saved = 1 − setting ÷ none, per seed pair).
CPU time (this process: the in-process worker, one torch thread) is wall time without the other processes of a
shared machine; on an idle machine the two agree.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality import Truth, mean_se  # noqa: E402  (the sibling bench script)

from storage import Store  # noqa: E402
from tuner.engine.prepared import prepare  # noqa: E402
from tuner.execution.submit import create_or_resume  # noqa: E402
from tuner.execution.worker import Worker, WorkerConfig  # noqa: E402
from tuner.spec import parse_spec  # noqa: E402

TASKS = [{"name": "helpful", "loss": "bce"}, {"name": "neutral", "loss": "bce"}, {"name": "harmful", "loss": "mse"}]


def spec_doc(setting: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    name, _, warmup = setting.partition(":")
    pruner: dict[str, Any] = {"name": name}
    if warmup:
        pruner["warmup_epochs"] = int(warmup)
    return {
        "name": f"prune-{name}-{warmup or 'auto'}-{seed}",
        "workload": {"name": "synthetic", "params": {"n_train": 300}},
        "aux_tasks": TASKS,
        "search": {"algorithm": args.algorithm, "n_trials": args.trials, "seed": seed, "pruner": pruner},
        "training": {"epochs": args.epochs, "batch_size": 32, "lr": 0.003, "seed": 1000 * seed},
        "affinity": {"every": 0},
    }


def run_study(doc: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder, Store(f"sqlite:///{folder}/p.db") as store:
        study = create_or_resume(store, parse_spec(doc))
        start, cpu = time.perf_counter(), time.process_time()
        Worker(store, config=WorkerConfig(poll_s=0.05)).run([study.name])
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows = store.trials(study.id)
        epochs = sum(len(store.epochs(study.id, t.number)) for t in rows)
        best = store.best_trial(study.id)
        assert best is not None
        return {"algorithm": study.spec["search"]["algorithm"], "wall_s": wall, "cpu_s": cpu, "epochs": epochs,
                "pruned": sum(t.state == "pruned" for t in rows),
                "best": {k: float(v) for k, v in best.params.items()}, "shown": best.value}


def overhead(args: argparse.Namespace) -> None:
    import threading

    from tuner.execution.trials import StudyContext, TrialLease
    from tuner.results import EpochMetrics
    from tuner.search import make_backend

    doc = spec_doc("median", 0, args)
    doc["search"].update(n_trials=args.others + 2, controls=False, algorithm="random")
    spec = parse_spec(doc)
    with tempfile.TemporaryDirectory() as folder, Store(f"sqlite:///{folder}/o.db") as store:
        record = create_or_resume(store, spec)
        backend = make_backend(spec)
        ctx = StudyContext(record, spec, backend, backend.sampler(0), backend.pruner())

        def lease() -> TrialLease:
            claim = store.claim_trial(record.id, "w", backend.suggest, sampler=ctx.sampler, pruner=ctx.pruner)
            assert claim is not None
            return TrialLease(store, ctx, claim, threading.Event(), heartbeat_s=600, flush_s=1.0)

        def epoch(i: int) -> EpochMetrics:
            return EpochMetrics(epoch=i, train_loss={"total": 1.0}, val_loss={"main": 1.0}, val_accuracy=0.9,
                                seconds=0.0)

        for _ in range(args.others):
            done = lease()
            for i in range(args.epochs):
                done.reporter.on_epoch_end(epoch(i))
            done.reporter.flush()
            store.finish_trial(done.claim, "complete", 0.9)
            done.end()
        old, new = lease(), lease()
        start = time.perf_counter()
        for i in range(args.epochs):  # the path before: a write and a read of the whole study per epoch
            store.report(old.claim, i + 1, 0.95)
        old_s = (time.perf_counter() - start) / args.epochs
        start = time.perf_counter()
        for i in range(args.epochs):
            new.reporter.on_epoch_end(epoch(i))
        new.reporter.flush()
        new_s = (time.perf_counter() - start) / args.epochs
        old.end()
        new.end()
    print(f"per epoch, against {args.others} complete trials on SQLite: trial.report + should_prune "
          f"{1000 * old_s:.2f} ms; SnapshotPruner (with the reporter's batched writes) {1000 * new_s:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="none,median,median:2,hyperband")
    parser.add_argument("--study-seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fresh-seeds", type=int, default=6)
    parser.add_argument("--algorithm", default="auto", help="the search (default auto: what a new spec gets)")
    parser.add_argument("--part", choices=("quality", "overhead"), default="quality")
    parser.add_argument("--others", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("ax").setLevel(logging.ERROR)
    if args.part == "overhead":
        overhead(args)
        return
    settings = [s for s in args.settings.split(",") if s]
    runs: dict[str, list[dict[str, Any]]] = {}
    truth = Truth(prepare(parse_spec(spec_doc("none", 0, args)), "cpu"), args.fresh_seeds)
    warm = spec_doc("none", 0, args)  # imports, data and first-call costs are paid here, not by the first setting
    warm["search"].update(n_trials=2)
    run_study(warm)
    for seed in range(args.study_seeds):
        for setting in settings:  # interleaved, so load drift on a shared machine touches every setting alike
            run = run_study(spec_doc(setting, seed, args))
            run["true"] = truth(run["best"])
            runs.setdefault(setting, []).append(run)
            print(f"{setting:<12} seed {seed} ({run['algorithm']}): {run['wall_s']:6.1f} s wall, "
                  f"{run['cpu_s']:6.1f} s CPU, {run['epochs']:4d} epochs, "
                  f"{run['pruned']:2d} pruned, shown {100 * run['shown']:.1f}, true {100 * run['true']:.1f}, "
                  f"λ {({k: round(v, 2) for k, v in run['best'].items()})}", flush=True)
    base = runs.get("none")
    print(f"\nsynthetic, {args.algorithm}, {args.trials} trials × {args.epochs} epochs, {args.study_seeds} study seeds "
          f"({args.fresh_seeds} fresh seeds each for the true quality)")
    print(f"{'setting':<12}{'wall s':>9}{'wall saved %':>14}{'CPU s':>9}{'CPU saved %':>14}{'epochs':>8}"
          f"{'epochs saved %':>16}{'true %':>14}{'Δ true (pt)':>14}")

    def saved(rs: list[dict[str, Any]], key: str) -> str:
        return mean_se([1 - r[key] / b[key] for r, b in zip(rs, base, strict=True)]) if base else "-"

    for setting, rs in runs.items():
        wall, cpu, epochs, true = ([r[k] for r in rs] for k in ("wall_s", "cpu_s", "epochs", "true"))
        delta = mean_se([r["true"] - b["true"] for r, b in zip(rs, base, strict=True)]) if base else "-"
        print(f"{setting:<12}{statistics.fmean(wall):>9.1f}{saved(rs, 'wall_s'):>14}{statistics.fmean(cpu):>9.1f}"
              f"{saved(rs, 'cpu_s'):>14}{statistics.fmean(epochs):>8.0f}{saved(rs, 'epochs'):>16}{mean_se(true):>14}"
              f"{delta:>14}")


if __name__ == "__main__":
    main()
