"""What the sanity gate costs next to a full trial, per built-in workload (target: about 1–2 %).

For each workload it loads the example spec (``examples/digits.yaml``, ``examples/synthetic.yaml``,
``examples/table/spec.yaml``; an inline spec when a file is missing), runs one warm-up trial, then times the
gate alone and a whole trial (gate included) at the spec's default λ, median of ``--repeats`` runs each.

    python bench/sanity_cost.py [--repeats 3] [--threads 1] [--device cpu] [--inline]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tuner.engine.callbacks import trial_callbacks
from tuner.engine.loop import run_trial
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.engine.sanity import sanity_gate
from tuner.results import SanityResult
from tuner.spec import StudySpec, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def inline_digits(_: Path) -> dict[str, Any]:
    return {"name": "digits-bench", "workload": {"name": "digits", "params": {"n_train": 300, "n_val": 300}},
            "aux_tasks": [{"name": "loop", "loss": "bce"}, {"name": "vertical", "loss": "bce"}],
            "training": {"epochs": 80, "batch_size": 32, "lr": 0.003}}


def inline_synthetic(_: Path) -> dict[str, Any]:
    return {"name": "synthetic-bench", "workload": {"name": "synthetic", "params": {"n_train": 300}},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "neutral", "loss": "bce"},
                          {"name": "harmful", "loss": "mse"}],
            "training": {"epochs": 80, "batch_size": 32, "lr": 0.003}}


def inline_table(folder: Path) -> dict[str, Any]:
    """A generated table: 3 classes, 4 noisy features, a per-class attribute table of 2 scores."""
    g = torch.Generator().manual_seed(0)
    n, classes = 600, ("a", "b", "c")
    centres = torch.randn(3, 4, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    x = centres[y] + 1.5 * torch.randn(n, 4, generator=g)
    rows = ["f1,f2,f3,f4,label"] + [",".join(f"{v:.4f}" for v in x[i].tolist()) + f",{classes[int(y[i])]}"
                                    for i in range(n)]
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    (folder / "attributes.csv").write_text("label,p,q\na,0.9,0.1\nb,0.2,0.8\nc,0.5,0.5\n")
    return {"name": "table-bench",
            "workload": {"name": "table", "params": {"data": str(folder / "data.csv"), "label": "label",
                                                     "attributes": str(folder / "attributes.csv")}},
            "aux_tasks": [{"name": "p", "loss": "bce"}, {"name": "q", "loss": "bce"}],
            "training": {"epochs": 40, "batch_size": 32, "lr": 0.01}}


WORKLOADS: list[tuple[str, str, Callable[[Path], dict[str, Any]]]] = [
    ("digits", "examples/digits.yaml", inline_digits),
    ("synthetic", "examples/synthetic.yaml", inline_synthetic),
    ("table", "examples/table/spec.yaml", inline_table),
]


def load(name: str, example: str, inline: Callable[[Path], dict[str, Any]], tmp: Path,
         force_inline: bool) -> tuple[StudySpec, str]:
    path = ROOT / example
    if path.is_file() and not force_inline:
        return load_spec(path), example
    folder = tmp / name
    folder.mkdir()
    return parse_spec(inline(folder)), "inline spec" if force_inline else f"inline spec ({example} missing)"


def time_gate(prep: PreparedStudy, lambdas: dict[str, float], seed: int) -> tuple[float, SanityResult]:
    spec = prep.spec
    model, batch = prep.new_model(seed), prep.sanity_batch(seed)
    start = time.perf_counter()
    result = sanity_gate(model, batch, prep.task_losses, lambdas, spec.training, spec.sanity, prep.temperatures)
    return time.perf_counter() - start, result


def time_trial(prep: PreparedStudy, lambdas: dict[str, float], seed: int) -> float:
    start = time.perf_counter()
    result = run_trial(prep, lambdas, seed=seed, callbacks=trial_callbacks(prep))
    if result.status != "complete":
        print(f"  note: trial seed {seed} ended {result.status}: {result.reason}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: the models are tiny; more threads only contend)")
    parser.add_argument("--device", default=None, help="override the specs' device, e.g. cpu or cuda")
    parser.add_argument("--inline", action="store_true", help="use the inline specs, not the example files")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads {torch.get_num_threads()}, repeats {args.repeats} (median)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, example, inline in WORKLOADS:
            spec, source = load(name, example, inline, Path(tmp), args.inline)
            prep = prepare(spec, device=args.device)
            lambdas = spec.default_lambdas()
            time_trial(prep, lambdas, seed=0)  # warm-up: first-call costs (kernels, allocator)
            gates = [time_gate(prep, lambdas, seed) for seed in range(args.repeats)]
            trials = [time_trial(prep, lambdas, seed) for seed in range(args.repeats)]
            gate_s = statistics.median(t for t, _ in gates)
            steps = statistics.median(r.steps for _, r in gates)
            passed = sum(r.passed for _, r in gates)
            trial_s = statistics.median(trials)
            rows.append((name, gate_s, steps, passed, trial_s, spec, source, prep))

    print()
    print(f"{'workload':<10} {'gate s':>8} {'steps':>6} {'passed':>7} {'trial s':>8} {'gate/trial':>11}  spec")
    for name, gate_s, steps, passed, trial_s, spec, source, prep in rows:
        t = spec.training
        print(f"{name:<10} {gate_s:>8.4f} {steps:>6g} {passed:>4}/{args.repeats:<2} {trial_s:>8.3f} "
              f"{gate_s / trial_s:>10.2%}  {source} (device {prep.device}, {t.epochs} epochs, "
              f"{len(prep.data.train)} train, batch {t.batch_size})")


if __name__ == "__main__":
    main()
