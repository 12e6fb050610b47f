"""Trials per hour of population-batched training (``tuner.engine.population.run``) against trials run one by one.

For each built-in workload (the example specs, as ``bench/sanity_cost.py`` loads them) it times whole trials
(sanity gate, training, test) with random λ inside the bounds and seeds 0, 1, …:

- sequential: ``run_trial`` for ``--seq-trials`` trials, one after the other, the fastest of them (trials are
  independent, so trials/hour alone does not depend on K);
- batched: ``run_population`` with K members, for every K in ``--sizes`` (K = 1 shows the batched path's
  own overhead; a worker runs a population of one as a plain trial).

and prints trials/hour of both and their ratio per K, in one run. The sequential figure is measured again
right before each population, so that on a shared machine both sides of a ratio see about the same load.
``--epochs`` overrides the specs' epochs (full-length trials of the CNN at K = 64 take long on a CPU); the
ratio barely depends on it. The task-affinity probe is off on both sides (only a trial alone would run it).

    python bench/population.py [--quick] [--sizes 1,4,16,64] [--epochs 20] [--seq-trials 3]
                               [--workloads digits,synthetic,table] [--device cpu|cuda] [--threads 1]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sanity_cost import WORKLOADS, load  # noqa: E402

from tuner.engine.callbacks import trial_callbacks  # noqa: E402
from tuner.engine.loop import run_trial  # noqa: E402
from tuner.engine.population.run import Member, population_support, run_population  # noqa: E402
from tuner.engine.prepared import PreparedStudy, prepare  # noqa: E402
from tuner.results import TrialResult  # noqa: E402
from tuner.spec import StudySpec, parse_spec  # noqa: E402


def with_epochs(spec: StudySpec, epochs: int | None) -> StudySpec:
    """``spec`` with ``epochs`` (None: its own), and without a per-step probe, which only a trial alone runs."""
    doc = spec.model_dump(mode="json", by_alias=True)
    if epochs is not None:
        doc["training"]["epochs"] = epochs
    if "affinity" in StudySpec.model_fields:  # the task-affinity probe would slow the sequential side only
        doc["affinity"] = {"every": 0}
    return parse_spec(doc)


def random_lambdas(spec: StudySpec, n: int) -> list[dict[str, float]]:
    rng = random.Random(0)
    return [{t.name: rng.uniform(t.lambda_.low, t.lambda_.high) for t in spec.searched_tasks()} for _ in range(n)]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Wall-clock and this process's CPU seconds of a block; on CUDA only the wall clock means anything."""

    def __init__(self, device: torch.device):
        self.device = device
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Clock:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        self.wall, self.cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu


def sequential_seconds(prep: PreparedStudy, lambdas: list[dict[str, float]]) -> tuple[float, float]:
    """(wall, CPU) seconds of one trial run alone: the fastest of ``len(lambdas)`` trials."""
    clocks = []
    for seed, lam in enumerate(lambdas):
        with Clock(prep.device) as clock:
            run_trial(prep, lam, seed=seed, callbacks=trial_callbacks(prep))
        clocks.append(clock)
    return min(c.wall for c in clocks), min(c.cpu for c in clocks)


def batched_seconds(prep: PreparedStudy, lambdas: list[dict[str, float]]) -> tuple[float, float, str]:
    """(wall, CPU) seconds of one population of ``len(lambdas)`` members, and how its members ended."""
    with Clock(prep.device) as clock:
        outcomes = run_population(prep, [Member(lam, seed) for seed, lam in enumerate(lambdas)])
    ends = [o.status if isinstance(o, TrialResult) else type(o).__name__ for o in outcomes]
    return clock.wall, clock.cpu, ", ".join(f"{ends.count(e)} {e}" for e in sorted(set(ends)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,64", help="population sizes K, comma-separated")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (0: the specs' own)")
    parser.add_argument("--seq-trials", type=int, default=3, help="trials timed one by one per row (fastest)")
    parser.add_argument("--workloads", default=",".join(name for name, _, _ in WORKLOADS))
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the specs' 'auto')")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the models are tiny)")
    parser.add_argument("--quick", action="store_true", help="a minute's check: K = 1, 4, 16; 5 epochs; 2 trials")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.epochs, args.seq_trials = "1,4,16", 5, 2
    sizes = [int(k) for k in args.sizes.split(",")]
    chosen = args.workloads.split(",")
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"thread(s), {os.cpu_count()} CPU(s) on the machine, load average {os.getloadavg()[0]:.1f}; epochs per "
          f"trial: {args.epochs or 'the spec'}; sequential = fastest of {args.seq_trials} trial(s) run alone, per row")
    print("trials/hour by wall clock; 'cpu ratio' = the same ratio by this process's CPU seconds, which other jobs "
          "on a shared machine disturb far less (meaningless on cuda)")
    print(f"{'workload':<10} {'K':>4} {'sequential/h':>13} {'batched/h':>10} {'ratio':>7} {'cpu ratio':>10}  "
          f"{'batched s':>9}  members")
    with tempfile.TemporaryDirectory() as tmp:
        for name, example, inline in WORKLOADS:
            if name not in chosen:
                continue
            spec, source = load(name, example, inline, Path(tmp), False)
            spec = with_epochs(spec, args.epochs or None)
            prep = prepare(spec, device=args.device)
            why = population_support(prep)
            if why:
                print(f"{name:<10} skipped: {why}")
                continue
            lambdas = random_lambdas(spec, max(max(sizes), args.seq_trials))
            warm = with_prep_epochs(prep, 1)
            run_trial(warm, lambdas[0], seed=0, callbacks=trial_callbacks(warm))  # warm-up: first-call costs
            run_population(warm, [Member(lam, s) for s, lam in enumerate(lambdas[:4])])
            for k in sizes:
                seq_wall, seq_cpu = sequential_seconds(prep, lambdas[: args.seq_trials])
                wall, cpu, ends = batched_seconds(prep, lambdas[:k])
                seq_rate, rate = 3600 / seq_wall, 3600 * k / wall
                print(f"{name:<10} {k:>4} {seq_rate:>13.0f} {rate:>10.0f} {rate / seq_rate:>6.2f}x "
                      f"{k * seq_cpu / cpu:>9.2f}x  {wall:>9.2f}  {ends}", flush=True)
            t = spec.training
            print(f"{'':<10} ({source}; device {prep.device}; {t.epochs} epochs, {len(prep.data.train)} train, "
                  f"batch {t.batch_size}, optimizer {t.optimizer})")


def with_prep_epochs(prep: PreparedStudy, epochs: int) -> PreparedStudy:
    """``prep`` with another number of epochs (same data on the same device)."""
    return PreparedStudy(with_epochs(prep.spec, epochs), prep.workload, prep.data, prep.device)


if __name__ == "__main__":
    main()
