"""A workload's own module: auxtune's loop against the same module in a plain PyTorch loop, and checkpoints' cost.

The module is examples/resnet-plugin's small ResNet (BatchNorm, an MLP main head, linear aux heads) with its own
SGD + Nesterov + cosine (``configure_optimizers``), on the ``digits`` workload's 8×8 images (in memory, so the
figure is the loop's, not data loading's), with two aux tasks (bce):

- **loop**: seconds per epoch (the training split, then the validation split) of ``run_trial`` (no gate, no
  affinity probe, fp32) against a plain loop written as a user would: the same module and initial weights, the
  same optimiser and schedule, a seeded random order, ``cross_entropy + Σ λ·bce``, an evaluation of the
  validation split each epoch. Interleaved, best of ``--repeats``; the ratio auxtune / plain is the figure
  (goal ≤ 1.05).
- **checkpoint**: the same trial with ``checkpoint_every: 1`` into memory (``tuner.engine.checkpoint``): seconds
  per checkpoint, its size, and the share of an epoch it costs (a worker writes it to the store too).
- **precision** (CUDA only): seconds per epoch at bf16 against fp32, at ``--gpu-batch-size``.

    python bench/user_module.py [--epochs 5] [--n-train 1000] [--batch-size 64] [--width 16] [--repeats 3]
                                [--threads 1] [--device auto]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples" / "resnet-plugin")]
from auxtune_resnet import ResNetImages, _resnet  # noqa: E402

import tuner.workloads  # noqa: E402
from tuner.engine.checkpoint import TrialCheckpoints  # noqa: E402
from tuner.engine.loop import run_trial  # noqa: E402
from tuner.engine.prepared import PreparedStudy, prepare  # noqa: E402
from tuner.spec import StudySpec, parse_spec  # noqa: E402
from tuner.workloads import WorkloadData  # noqa: E402
from tuner.workloads.digits import DigitsWorkload  # noqa: E402

TASKS = ("loop", "curvy")
WIDTH = [16]


class ResNetDigits(DigitsWorkload):
    """digits with the example plugin's module and optimiser."""

    name = "resnet-digits"
    configure_optimizers = ResNetImages.configure_optimizers  # type: ignore[assignment]

    def build_model(self, data: WorkloadData, aux_tasks: Sequence[str]) -> Any:
        return _resnet(data.input_shape[0], data.n_classes, {t: data.tasks[t].dim for t in aux_tasks}, WIDTH[0])


def spec(args: argparse.Namespace, **training: Any) -> StudySpec:
    return parse_spec({
        "name": "bench-user-module",
        "workload": {"name": "resnet-digits", "params": {"n_train": args.n_train, "n_val": 300, "n_test": 100}},
        "aux_tasks": [{"name": t, "loss": "bce"} for t in TASKS],
        "training": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 0.05, "device": args.device,
                     **training},
        "sanity": {"enabled": False}, "affinity": {"every": 0}})


def engine_epoch_s(prep: PreparedStudy, checkpoints: TrialCheckpoints | None = None) -> float:
    start = time.perf_counter()
    result = run_trial(prep, prep.spec.default_lambdas(), seed=0, checkpoints=checkpoints)
    assert result.status == "complete", result.reason
    if prep.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / prep.spec.training.epochs


def plain_epoch_s(prep: PreparedStudy) -> float:
    """The plain PyTorch loop a user would write, on the same tensors."""
    spec, data = prep.spec, prep.data
    train, val = data.train, data.val
    assert isinstance(train, tuner.workloads.Split) and isinstance(val, tuner.workloads.Split)
    lambdas = spec.default_lambdas()
    start = time.perf_counter()
    torch.manual_seed(0)
    model = prep.workload.build_model(data, list(TASKS)).to(prep.device)
    opt, sched = prep.workload.configure_optimizers(model, spec.training.lr, 0.0)
    g = torch.Generator().manual_seed(0)
    b = spec.training.batch_size
    for _ in range(spec.training.epochs):
        model.train()
        order = torch.randperm(len(train), generator=g).to(prep.device)
        for i in range(0, len(train), b):
            idx = order[i:i + b]
            x, y = train.x[idx], train.y[idx]
            out = model(x)
            loss = F.cross_entropy(out["main"], y)
            for t in TASKS:
                loss = loss + lambdas[t] * F.binary_cross_entropy_with_logits(out[t].reshape(-1),
                                                                              train.aux[t][idx].float().reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            out = model(val.x)
            float(F.cross_entropy(out["main"], val.y))
            float((out["main"].argmax(-1) == val.y).float().mean())
    if prep.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / spec.training.epochs


class MemorySink:
    def __init__(self) -> None:
        self.blob: bytes | None = None

    def load(self) -> bytes | None:
        return None

    def save(self, epoch: int, blob: bytes) -> None:
        self.blob = blob


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--gpu-batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    WIDTH[0] = args.width
    tuner.workloads._plugins = lambda: {ResNetDigits.name: ResNetDigits}  # type: ignore[attr-defined]
    prep = prepare(spec(args))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, device {prep.device}, "
          f"threads {args.threads}; digits n_train {args.n_train}, batch {args.batch_size}, ResNet width "
          f"{args.width}, {args.epochs} epochs")
    engine_epoch_s(prep), plain_epoch_s(prep)  # warm-up
    engine, plain = [], []
    for _ in range(args.repeats):
        engine.append(engine_epoch_s(prep))
        plain.append(plain_epoch_s(prep))
    print(f"loop: auxtune {min(engine) * 1e3:.1f} ms/epoch, plain PyTorch {min(plain) * 1e3:.1f} ms/epoch, "
          f"ratio {min(engine) / min(plain):.3f} (goal ≤ 1.05)")

    sink = MemorySink()
    ckpt = TrialCheckpoints(sink, 1)
    with_ckpt = engine_epoch_s(prep, ckpt)
    per = ckpt.seconds / max(1, ckpt.saved)
    print(f"checkpoint every epoch: {per * 1e3:.1f} ms each, {len(sink.blob or b'') / 1e6:.2f} MB, "
          f"{per / min(engine):.1%} of an epoch (epoch with it: {with_ckpt * 1e3:.1f} ms)")

    if prep.device.type == "cuda":
        times = {}
        for precision in ("fp32", "bf16"):
            gpu = prepare(spec(args, precision=precision, batch_size=args.gpu_batch_size))
            engine_epoch_s(gpu)
            times[precision] = min(engine_epoch_s(gpu) for _ in range(args.repeats))
        print(f"precision on {torch.cuda.get_device_name()}: fp32 {times['fp32'] * 1e3:.1f} ms/epoch, "
              f"bf16 {times['bf16'] * 1e3:.1f} ms/epoch, bf16/fp32 {times['bf16'] / times['fp32']:.3f}")


if __name__ == "__main__":
    main()
