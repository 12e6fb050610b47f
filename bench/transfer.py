"""Transfer, distillation and domain adaptation figures (issue #9). So far: domain adaptation with MMD.

Domain adaptation: ``digits`` with a generated target domain (``--shift``: noise, blur or shift of the 8×8
images), one aux task ``{loss: mmd}``. λ_mmd is chosen on seed 0 by target-domain validation accuracy over
``--grid``, then λ_mmd = best and λ_mmd = 0 are retrained over ``--seeds`` fresh seeds and compared on the
target domain's *test* split (and the source test split, to show what adaptation costs there).

    python bench/transfer.py [--shift blur] [--grid 0,0.15,0.3,0.6] [--seeds 1,2,3,4,5] [--epochs 10]

Prints figures; asserts nothing. The frozen-trunk timing and the distillation gain are still to come.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from tuner.spec import parse_spec
from tuner.training import PreparedStudy, prepare, run_trial


def _spec(shift: str, epochs: int) -> PreparedStudy:
    return prepare(parse_spec({
        "name": "bench-mmd",
        "workload": {"name": "digits", "params": {"n_train": 300, "n_val": 200, "target_shift": shift,
                                                  "n_target": 300, "n_target_val": 200}},
        "aux_tasks": [{"name": "domain", "loss": "mmd", "lambda": {"low": 0.0, "high": 4.0}}],
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.003},
        "objective": {"metric": "target_val_accuracy"},
    }), "cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shift", default="blur", choices=["noise", "blur", "shift"])
    parser.add_argument("--grid", default="0,0.15,0.3,0.6")
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    prep = _spec(args.shift, args.epochs)
    grid = [float(v) for v in args.grid.split(",")]
    search = {lam: run_trial(prep, {"domain": lam}, seed=0).value or 0.0 for lam in grid}
    best = max(search, key=lambda lam: search[lam])
    print(f"shift={args.shift}: target val accuracy on seed 0 by λ_mmd: "
          + ", ".join(f"{lam:g}: {v:.3f}" for lam, v in search.items()) + f" → best λ_mmd = {best:g}")
    seeds = [int(s) for s in args.seeds.split(",")]
    for lam in (0.0, best):
        runs = [run_trial(prep, {"domain": lam}, seed=seed) for seed in seeds]
        target = [r.target_test["accuracy"] for r in runs]
        source = [r.test_accuracy or 0.0 for r in runs]
        print(f"λ_mmd = {lam:g}: target test accuracy {statistics.mean(target):.3f} ± {statistics.stdev(target):.3f}"
              f", source test {statistics.mean(source):.3f} (seeds {seeds}; per seed "
              + ", ".join(f"{t:.3f}" for t in target) + ")")


if __name__ == "__main__":
    main()
