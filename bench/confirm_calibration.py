"""How often each confirmation verdict is wrong: false positives on a null aux task, power on a helpful one.

For each of ``--datasets`` generated data sets (``synthetic``'s ``data_seed``) the baseline (λ = 0) and the
"best" arm (the aux task at ``--null-lam`` for ``null``, ``--lam`` for ``helpful``) are trained on ``--seeds``
shared confirmation seeds twice: on the data set's one fixed split, and with the split redrawn per seed
(``split_seed`` = the seed, as ``confirm.resample_splits`` does). Each verdict rule then reads the test
accuracy, as a confirmation does:

- ``welch``: Welch's t-test on the fixed split (the verdict before paired analysis);
- ``paired``: the paired t-test on the fixed split;
- ``resampled``: the corrected resampled t-test (Nadeau & Bengio) on redrawn splits;
- ``resampled, uncorrected``: the plain paired t-test on redrawn splits (``test: paired``, the default);
- ``auto (…)`` rows: the sequential procedure (rounds of ``--round`` seeds up to ``--seeds``, O'Brien–Fleming
  α-spending) on top of the test named.

On the ``null`` task (its targets are independent of everything) a "better" or "worse" verdict is a false
positive; on the ``helpful`` task (``--power-datasets`` data sets) "better" is power. Runs on the CPU through the
engine directly (no store, no service).

    python bench/confirm_calibration.py [--datasets 40] [--power-datasets 20] [--seeds 16] [--epochs 6]
        [--lam 1] [--null-lam 0.25] [--jobs 2]

Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from tuner.analysis import stats
from tuner.analysis.confirm import CONFIRM_SEED_BASE
from tuner.analysis.sequential import decide, look_sizes
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.engine.runs import run_spec, test_value
from tuner.spec import parse_spec

Values = dict[int, float | None]  # test accuracy per confirmation seed


def spec_for(task: str, data_seed: int, split_seed: int | None, args: argparse.Namespace) -> Any:
    params: dict[str, Any] = {"n_train": args.n_train, "n_val": args.n_val, "n_test": args.n_test,
                              "data_seed": data_seed}
    if split_seed is not None:
        params["split_seed"] = split_seed
    return run_spec(parse_spec({
        "name": "calibration", "workload": {"name": "synthetic", "params": params},
        "aux_tasks": [{"name": task, "loss": "bce"}], "search": {"algorithm": "random", "n_trials": 1},
        "training": {"epochs": args.epochs, "batch_size": 32, "lr": 0.003}, "sanity": {"enabled": False},
        "affinity": {"every": 0}}))


def arm_values(task: str, data_seed: int, resample: bool, args: argparse.Namespace) -> tuple[Values, Values]:
    """Test accuracy per seed of the baseline and of the arm, both on the same seeds (and splits)."""
    base: Values = {}
    arm: Values = {}
    fixed = prepare(spec_for(task, data_seed, None, args))
    for i in range(args.seeds):
        seed = CONFIRM_SEED_BASE + i
        prep = prepare(spec_for(task, data_seed, seed, args)) if resample else fixed
        for out, lam in ((base, 0.0), (arm, args.lam)):
            out[seed] = test_value(run_trial(prep, {task: lam}, seed=seed), "val_accuracy")
    return base, arm


def verdicts(base: Values, arm: Values, ratio: float, resampled: bool, round_seeds: int) -> dict[str, Any]:
    """Every rule's verdict (and the seeds the sequential ones used) on one data set's runs."""
    seeds = sorted(base)

    def first(n: int) -> tuple[Values, Values]:
        keep = set(seeds[:n])
        return {s: v for s, v in arm.items() if s in keep}, {s: v for s, v in base.items() if s in keep}

    def paired(correction: float) -> Callable[[int, float], list[stats.Comparison]]:
        return lambda n, a: [stats.compare_paired(*first(n), "maximize", a, 1 - a, correction)]

    out: dict[str, Any] = {}
    if resampled:
        out["resampled"] = paired(ratio)(len(seeds), stats.ALPHA)[0].verdict
        out["resampled, uncorrected"] = paired(0.0)(len(seeds), stats.ALPHA)[0].verdict
        state, last = decide(look_sizes(round_seeds, len(seeds)), len(seeds), paired(ratio))
        out["auto (resampled)"] = (last[0].verdict, state.seeds)
        state, last = decide(look_sizes(round_seeds, len(seeds)), len(seeds), paired(0.0))
        out["auto (res., uncorrected)"] = (last[0].verdict, state.seeds)
    else:
        out["welch"] = stats.compare(list(arm.values()), list(base.values()), "maximize").verdict
        out["paired"] = paired(0.0)(len(seeds), stats.ALPHA)[0].verdict
        state, last = decide(look_sizes(round_seeds, len(seeds)), len(seeds), paired(0.0))
        out["auto (paired)"] = (last[0].verdict, state.seeds)
    return out


def one_data_set(job: tuple[str, float, int, argparse.Namespace]) -> tuple[dict[str, Any], float]:
    """Every rule's verdict on one data set, and the paired gain on its fixed split."""
    task, lam, d, args = job
    torch.set_num_threads(args.threads)
    args = argparse.Namespace(**{**vars(args), "lam": lam})
    out: dict[str, Any] = {}
    gain = 0.0
    for resample in (False, True):
        base, arm = arm_values(task, d, resample, args)
        if not resample:
            gain = stats.compare_paired(arm, base, "maximize").difference or 0.0
        out.update(verdicts(base, arm, args.n_test / args.n_train, resample, args.round))
    print(f"  {task} data set {d} done", file=sys.stderr, flush=True)
    return out, gain


def collect(task: str, lam: float, datasets: range, args: argparse.Namespace) -> tuple[dict[str, list[Any]],
                                                                                     list[float]]:
    rows: dict[str, list[Any]] = {}
    gains: list[float] = []
    jobs = [(task, lam, d, args) for d in datasets]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        for out, gain in pool.imap(one_data_set, jobs):
            gains.append(gain)
            for rule, verdict in out.items():
                rows.setdefault(rule, []).append(verdict)
    return rows, gains


def rate(verdicts: list[Any], hit: Callable[[str | None], bool]) -> str:
    plain = [v[0] if isinstance(v, tuple) else v for v in verdicts]
    return f"{sum(map(hit, plain))}/{len(plain)} ({100 * sum(map(hit, plain)) / len(plain):.0f} %)"


def mean_seeds(verdicts: list[Any]) -> str:
    used = [v[1] for v in verdicts if isinstance(v, tuple)]
    return f"{sum(used) / len(used):.1f}" if used else "fixed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=40, help="null data sets (false positives)")
    parser.add_argument("--power-datasets", type=int, default=20, help="helpful data sets (power)")
    parser.add_argument("--seeds", type=int, default=16, help="confirmation seeds per arm (the most for auto)")
    parser.add_argument("--round", type=int, default=4, help="seeds per round of the auto rows")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-val", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--lam", type=float, default=1.0, help="the helpful arm's λ")
    parser.add_argument("--null-lam", type=float, default=0.25, help="the null arm's λ (small: no effect expected)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--jobs", type=int, default=2, help="data sets trained in parallel processes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    null, null_gain = collect("null", args.null_lam, range(args.datasets), args)
    helpful, gain = collect("helpful", args.lam, range(1000, 1000 + args.power_datasets), args)
    print(f"synthetic n_train={args.n_train} n_val={args.n_val} n_test={args.n_test} epochs={args.epochs}, "
          f"λ null={args.null_lam} helpful={args.lam}, {args.seeds} seeds (auto: rounds of {args.round}), "
          f"α={stats.ALPHA}; {time.perf_counter() - start:.0f} s")
    print(f"mean paired gain on the fixed split: null {sum(null_gain) / len(null_gain):+.4f}, "
          f"helpful {sum(gain) / len(gain):+.4f}")
    print(f"{'rule':<26} {'false positives (null)':>24} {'power (helpful better)':>24} {'mean seeds':>11}")
    for rule in null:
        print(f"{rule:<26} {rate(null[rule], lambda v: v in (stats.BETTER, stats.WORSE)):>24} "
              f"{rate(helpful[rule], lambda v: v == stats.BETTER):>24} "
              f"{mean_seeds(null[rule]) + ' / ' + mean_seeds(helpful[rule]) if 'auto' in rule else 'fixed':>11}")


if __name__ == "__main__":
    main()
