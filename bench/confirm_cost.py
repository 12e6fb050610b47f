"""What trusting the answer costs: a 10-seed confirmation next to its search, and the affinity probe per trial.

1. Confirmation ÷ search: a synthetic study (helpful, neutral, harmful; ``--trials`` trials of ``--epochs``
   epochs, the probe at its default) is searched, then confirmed over ``--seeds`` seeds (baseline + best λ:
   2 × seeds runs), both on the same store with ``--workers`` in-process workers run one after the other
   (the same per-run cost as worker processes, without their start-up).
2. Affinity probe overhead: one trial of the same spec with the probe off (``affinity.every: 0``) and at
   ``every`` = 50, 25 (the default) and 10; median CPU time of ``--repeats`` seeds each, interleaved; overhead
   = time ÷ off − 1.
   Trials train identically with the probe on or off (checked here too).

    python bench/confirm_cost.py [--trials 20] [--epochs 40] [--seeds 10] [--repeats 3] [--threads 1]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import platform
import statistics
import tempfile
import time
from typing import Any

import optuna
import torch

from storage import Store
from tuner.analysis.confirm import confirmation_report, request_confirmation, verdict_line
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.spec import parse_spec


def spec_doc(trials: int, epochs: int, every: int | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "confirm-bench", "workload": {"name": "synthetic", "params": {"n_train": 300}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "neutral", "loss": "bce"},
                      {"name": "harmful", "loss": "mse"}],
        "search": {"algorithm": "tpe", "n_trials": trials, "seed": 0},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.003},
    }
    if every is not None:
        doc["affinity"] = {"every": every}
    return doc


def confirmation_cost(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db")
        study = create_or_resume(store, parse_spec(spec_doc(args.trials, args.epochs)))
        start = time.perf_counter()
        Worker(store, config=WorkerConfig(poll_s=0.05)).run([study.name])
        search_s = time.perf_counter() - start
        runs = request_confirmation(store, store.get_study(study.id), seeds=args.seeds)
        start = time.perf_counter()
        Worker(store, config=WorkerConfig(poll_s=0.05)).run([study.name])
        confirm_s = time.perf_counter() - start
        report = confirmation_report(store.get_study(study.id), store.runs(study.id))
        store.close()
    print(f"search: {args.trials} trials × {args.epochs} epochs in {search_s:.1f} s; confirmation: {len(runs)} runs "
          f"({args.seeds} seeds × baseline + best) in {confirm_s:.1f} s")
    print(f"confirmation ÷ search = {confirm_s / search_s:.2f} "
          f"(runs ÷ trials = {len(runs) / args.trials:.2f}; a run skips the sanity gate and the probe)")
    print(verdict_line(report))


def probe_overhead(args: argparse.Namespace) -> None:
    lambdas = {"helpful": 1.0, "neutral": 1.0, "harmful": 1.0}
    settings = (0, 50, 25, 10)
    preps = {every: prepare(parse_spec(spec_doc(1, args.epochs, every))) for every in settings}
    for prep in preps.values():
        run_trial(prep, lambdas, seed=0, callbacks=trial_callbacks(prep))  # warm-up
    timings: dict[int, list[float]] = {every: [] for every in settings}
    shares: dict[int, list[float]] = {every: [] for every in settings}
    results: dict[int, list[float | None]] = {every: [] for every in settings}
    for seed in range(args.repeats):  # interleaved, so a busy machine slows every setting alike
        for every, prep in preps.items():
            start = time.process_time()  # CPU time of this process: a shared machine's load does not count
            result = run_trial(prep, lambdas, seed=seed, callbacks=trial_callbacks(prep))
            timings[every].append(time.process_time() - start)
            results[every].append(result.test_accuracy)
            if result.affinity:  # the probe times itself: its share of the trial, free of the machine's noise
                shares[every].append(result.affinity["seconds"] / (result.seconds - result.affinity["seconds"]))
    off = statistics.median(timings[0])
    print(f"affinity probe, one trial ({args.epochs} epochs, 300 samples, batch 32, 3 aux tasks), median of "
          f"{args.repeats}, CPU time: off {off:.2f} s")
    for every in settings[1:]:
        t = statistics.median(timings[every])
        print(f"  every {every:>2} steps: {t:.2f} s, overhead {t / off - 1:+.1%} (probe's own timer: "
              f"{statistics.median(shares[every]):.1%}); same test accuracy as off: {results[every] == results[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    probe_overhead(args)
    confirmation_cost(args)


if __name__ == "__main__":
    main()
