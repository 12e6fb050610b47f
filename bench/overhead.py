"""Overhead of running trials through auxtune's store and workers vs a plain Optuna loop.

The same N trials (same workload, same λ list, same seeds) are timed
  (a) as a plain ``optuna`` ``study.optimize`` loop (in-memory storage) calling ``run_trial`` directly, and
  (b) through ``auxtune run`` with the store (SQLite file, one worker process),
each in a fresh Python process, so both pay the same interpreter and torch start-up. Prints the wall times and
the ratio b/a. Goal: ≤ 1.05 at workloads of ≥ 1 s per trial.

    python bench/overhead.py [--trials 12] [--epochs 200]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

PLAIN = r"""
import json, os, sys, optuna, torch
from tuner.spec import load_spec
from tuner.engine.threads import apply_thread_policy
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
apply_thread_policy()  # the threads `auxtune run` gives its one worker (tuner.engine.threads)
optuna.logging.set_verbosity(optuna.logging.WARNING)
spec = load_spec(sys.argv[1]); lambdas = json.loads(sys.argv[2])
prep = prepare(spec)
study = optuna.create_study(direction="maximize")
for lam in lambdas:
    study.enqueue_trial(lam)
def objective(trial):
    lam = {k: trial.suggest_float(k, 0.0, 2.0) for k in lambdas[0]}
    return run_trial(prep, lam, seed=spec.training.seed + trial.number, callbacks=trial_callbacks(prep)).value
study.optimize(objective, n_trials=len(lambdas))
print(json.dumps({"trials": len(study.trials)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2, help="alternate (a) and (b) this many times; keep the best")
    args = ap.parse_args()

    rng = random.Random(0)
    lambdas = [{"helpful": round(rng.uniform(0, 2), 4), "harmful": round(rng.uniform(0, 2), 4)}
               for _ in range(args.trials)]
    with tempfile.TemporaryDirectory() as tmp:
        spec_doc = {
            "name": "overhead", "workload": {"name": "synthetic"},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
            "search": {"algorithm": "random", "n_trials": args.trials, "seed": 0, "controls": False},
            "training": {"epochs": args.epochs, "batch_size": 32, "lr": 0.003, "device": "cpu"},
        }
        spec_path = Path(tmp) / "overhead.yaml"
        spec_path.write_text(yaml.safe_dump(spec_doc))

        sys.path.insert(0, str(ROOT))
        from storage import Store
        from tuner.execution.submit import spec_document
        from tuner.spec import load_spec

        spec = load_spec(spec_path)
        plain_times, store_times, trial_s = [], [], []
        plain_cpu, store_cpu = [], []
        for rep in range(args.repeats):
            t0, c0 = time.perf_counter(), children_cpu()
            subprocess.run([sys.executable, "-c", PLAIN, str(spec_path), json.dumps(lambdas)], cwd=ROOT, check=True,
                           stdout=subprocess.DEVNULL)
            plain_times.append(time.perf_counter() - t0)
            plain_cpu.append(children_cpu() - c0)

            # (b) the same λ list enqueued in a fresh store; `auxtune run` resumes that study and runs it.
            url = f"sqlite:///{Path(tmp) / f'overhead{rep}.db'}"
            with Store(url) as store:
                store.create_or_resume_study(spec.name, spec_document(spec), ["maximize"], args.trials,
                                             enqueue=lambdas)
            t0, c0 = time.perf_counter(), children_cpu()
            subprocess.run([sys.executable, "-m", "tuner.cli", "run", str(spec_path), "--db", url, "--workers", "1"],
                           cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
            store_times.append(time.perf_counter() - t0)
            store_cpu.append(children_cpu() - c0)
            with Store(url) as store:
                rows = sorted(store.trials(store.get_study("overhead").id, limit=10000), key=lambda r: r.number)
                assert [r.params for r in rows] == lambdas, "the two runs must train the same λ list"
                trial_s += [r.result["seconds"] for r in rows if r.result]
        plain, store_run = min(plain_times), min(store_times)
        # The fixed start-up of each path: (a) with no trial, (b) rerun on its finished study (nothing to do).
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", PLAIN, str(spec_path), "[]"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        plain_fixed = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tuner.cli", "run", str(spec_path), "--db", url, "--workers", "1"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        store_fixed = time.perf_counter() - t0

    per_trial = sum(trial_s) / len(trial_s)
    print(f"trials: {args.trials}, synthetic workload, {args.epochs} epochs, {per_trial:.2f} s per trial")
    print(f"(a) plain optuna loop, fresh process : {plain:7.2f} s  (best of {[round(t, 1) for t in plain_times]})")
    print(f"(b) auxtune run + SQLite store       : {store_run:7.2f} s  (best of {[round(t, 1) for t in store_times]})")
    print(f"ratio b/a                            : {store_run / plain:7.3f}   (goal ≤ 1.05)")
    print(f"fixed start-up, no trial: (a) {plain_fixed:.2f} s, (b) {store_fixed:.2f} s (runner + worker process)")
    steady = (store_run - store_fixed) / (plain - plain_fixed)
    print(f"ratio b/a without the start-up       : {steady:7.3f}   (per-trial cost of the store and workers)")
    print(f"CPU seconds (user+sys), best run: (a) {min(plain_cpu):.2f}, (b) {min(store_cpu):.2f}, ratio "
          f"{min(store_cpu) / min(plain_cpu):.3f} (other jobs on a shared machine disturb this less than wall time)")


def children_cpu() -> float:
    """User + system CPU seconds of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
