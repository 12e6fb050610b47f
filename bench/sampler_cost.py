"""What one ask of each search backend's sampler costs as a study grows (issue #18: the price of ``auto``'s GP).

For each algorithm and number of searched λ, a study of ``synthetic`` aux tasks is asked and told ``--trials``
times in memory (Optuna's ``InMemoryStorage``: no store, so the figure is the sampler's model, not the SQL),
through the sampler and ``suggest`` of auxtune's own backend (``tuner.search.make_backend``: start-up trials,
constant liar, seeds as a worker sets them). The told value is a noisy quadratic of the λ. Printed: the mean ms
per ask over the ``--window`` asks before each of ``--marks``. A worker pays this inside its claim (the study's
lock), on top of the store's own ask (``bench/ask_latency.py``).

    python bench/sampler_cost.py [--algorithms tpe,gp,random] [--dims 3,5] [--marks 30,100,200] [--window 10]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tuner.search import make_backend  # noqa: E402
from tuner.spec.study import validate_structure  # noqa: E402  (the λ only: no workload is run)


def ask_costs(algorithm: str, dims: int, marks: list[int], window: int) -> dict[int, float]:
    spec = validate_structure({
        "name": f"cost-{algorithm}-{dims}",
        "workload": {"name": "synthetic", "params": {"n_train": 64}},
        "aux_tasks": [{"name": f"t{i}", "loss": "bce"} for i in range(dims)],
        "search": {"algorithm": algorithm, "n_trials": max(marks), "seed": 0},
    })
    backend = make_backend(spec)
    study = optuna.create_study(direction="maximize", sampler=backend.sampler(0))
    backend.enqueue_controls(study)
    noise = random.Random(0)
    seconds: list[float] = []
    out: dict[int, float] = {}
    for n in range(1, max(marks) + 1):
        start = time.perf_counter()
        trial = study.ask()
        lambdas = backend.suggest(trial)
        seconds.append(time.perf_counter() - start)
        study.tell(trial, -sum((float(v) - 1.5) ** 2 for v in lambdas.values()) + noise.gauss(0, 0.3))
        if n in marks:
            out[n] = 1000 * statistics.fmean(seconds[-window:])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="tpe,gp,random")
    parser.add_argument("--dims", default="3,5")
    parser.add_argument("--marks", default="30,100,200")
    parser.add_argument("--window", type=int, default=10)
    args = parser.parse_args()
    marks = sorted(int(m) for m in args.marks.split(","))
    torch.set_num_threads(1)  # as a worker by default
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"torch {torch.__version__}, optuna {optuna.__version__}; ms per ask, mean of the {args.window} asks "
          f"before each mark")
    print(f"{'algorithm':<10}{'λ':>3}" + "".join(f"{f'at {m}':>10}" for m in marks))
    for dims in (int(d) for d in args.dims.split(",")):
        for algorithm in args.algorithms.split(","):
            costs = ask_costs(algorithm, dims, marks, args.window)
            print(f"{algorithm:<10}{dims:>3}" + "".join(f"{costs[m]:>10.1f}" for m in marks), flush=True)


if __name__ == "__main__":
    main()
