"""Images read from disk: auxtune's training throughput against a plain PyTorch loop, a population's, and memory.

On a generated image folder (``tests/factories/images.py``: ``--images`` PNGs of ``--size`` px in 4 classes, two
per-class soft attributes) with the ``images`` workload (augmentation on: crop, flip, jitter):

- **throughput**: samples/s of a trial's training epochs (each epoch: the training split, then the validation
  split, as a trial runs them; no gate, no probe) through ``run_trial``, against a plain PyTorch loop written as a
  user would (``DataLoader(shuffle=True)`` with the same ``num_workers``/``pin_memory``/``prefetch_factor``/
  persistent workers, the same model, Adam, the same losses, the same data set and augmentation). Interleaved,
  best of ``--repeats``; the ratio auxtune / plain is the figure (goal ≥ 0.95).
- **population**: ``run_population`` with K = ``--population`` members on the same images (one batch read and
  decoded for all members): samples/s per member and in all, against a trial alone.
- **memory** (``--memory``): a study over ``--memory-images`` images of 64×64 (20 000 ≈ 1 GB as float32) runs a
  short trial in a subprocess; prints the peak RSS of the training process (VmHWM) and of its largest loader
  worker. The images are read from disk per batch, never held decoded.

    python bench/data.py [--images 2000] [--size 64] [--epochs 2] [--workers 2] [--batch-size 64]
                         [--population 8] [--repeats 2] [--threads 1] [--device auto]
    python bench/data.py --memory [--memory-images 20000]

Device-agnostic: ``--device auto`` trains on CUDA when present. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.factories.images import write_image_folder  # noqa: E402
from tuner.engine.loop import run_trial  # noqa: E402
from tuner.engine.losses import MAIN  # noqa: E402
from tuner.engine.population.run import Member, run_population  # noqa: E402
from tuner.engine.prepared import PreparedStudy, prepare  # noqa: E402
from tuner.spec import StudySpec, parse_spec  # noqa: E402

AUGMENT = {"crop_padding": 4, "flip": True, "jitter": 0.2}


def study(root: Path, attributes: Path, size: int, epochs: int, workers: int, batch_size: int,
          device: str) -> StudySpec:
    return parse_spec({
        "name": "bench-images",
        "workload": {"name": "images", "params": {"root": str(root), "attributes": str(attributes),
                                                  "image_size": size, "augment": AUGMENT}},
        "aux_tasks": [{"name": "ear", "loss": "bce"}, {"name": "coat", "loss": "bce"}],
        "training": {"epochs": epochs, "batch_size": batch_size, "lr": 1e-3, "device": device,
                     "loader": {"num_workers": workers}},
        "sanity": {"enabled": False}, "affinity": {"every": 0}, "search": {"n_trials": 2},
    })


class Augmented(torch.utils.data.Dataset[Any]):
    """What a user's own data set would do: each read augmented with a fresh random draw."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Any:
        return self.dataset.sample(i, random.getrandbits(62))


class PlainLoop:
    """A plain PyTorch loop on the same model, data and loader settings; its loaders (and persistent workers) are
    made once, as a user's script would keep them."""

    def __init__(self, prep: PreparedStudy, lambdas: dict[str, float]):
        self.prep, self.lambdas = prep, lambdas
        spec, workers = prep.spec, prep.spec.training.loader.num_workers
        settings: dict[str, Any] = {"num_workers": workers, "pin_memory": prep.device.type == "cuda",
                                    "prefetch_factor": spec.training.loader.prefetch_factor if workers else None,
                                    "persistent_workers": workers > 0}
        self.train = DataLoader(Augmented(prep.data.train), batch_size=spec.training.batch_size, shuffle=True,
                                **settings)
        self.val = DataLoader(prep.data.val, batch_size=prep.batches("val").batch_size, **settings)  # type: ignore[arg-type]

    def losses(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
               aux: dict[str, torch.Tensor]) -> torch.Tensor:
        device = self.prep.device
        out = model(x.to(device, non_blocking=True))
        total = F.cross_entropy(out[MAIN], y.to(device, non_blocking=True))
        for name, lam in self.lambdas.items():
            target = aux[name].to(device, non_blocking=True).float()
            total = total + lam * F.binary_cross_entropy_with_logits(out[name].squeeze(-1), target)
        return total

    def epochs(self, seed: int) -> float:
        """Seconds of the spec's epochs (each: train, then validation), from a fresh model."""
        prep = self.prep
        model = prep.new_model(seed)
        opt = torch.optim.Adam(model.parameters(), lr=prep.spec.training.lr)
        start = time.perf_counter()
        for _ in range(prep.spec.training.epochs):
            model.train()
            for x, y, aux in self.train:
                loss = self.losses(model, x, y, aux)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            model.eval()
            with torch.no_grad():
                total = 0.0
                for x, y, aux in self.val:
                    total += float(self.losses(model, x, y, aux)) * len(y)
        if prep.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start


def auxtune_epochs(prep: PreparedStudy, lambdas: dict[str, float], seed: int) -> float:
    """Seconds of a trial's epochs (each: train, then validation), as the trial measured them."""
    result = run_trial(prep, lambdas, seed=seed)
    assert result.status == "complete", result.reason
    return sum(e.seconds for e in result.epochs)


def throughput(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root, attributes = write_image_folder(Path(tmp) / "images", per_class=args.images // 4, size=args.size)
        print(f"wrote {args.images} PNGs of {args.size}×{args.size} in {time.perf_counter() - t0:.1f} s")
        spec = study(root, attributes, args.size, args.epochs, args.workers, args.batch_size, args.device)
        prep = prepare(spec)
        lambdas = spec.default_lambdas()
        n = len(prep.data.train) * spec.training.epochs
        print(f"device {prep.device}, {torch.get_num_threads()} thread(s), {len(prep.data.train)} train / "
              f"{len(prep.data.val)} val images, {spec.training.epochs} epochs, batch {spec.training.batch_size}, "
              f"loader workers {args.workers}; {platform.processor() or platform.machine()}")
        plain_loop = PlainLoop(prep, lambdas)
        auxtune_epochs(prep, lambdas, 0)  # warm-up: imports, kernels, workers
        plain_loop.epochs(0)
        ours, plain = [], []
        for r in range(args.repeats):
            ours.append(auxtune_epochs(prep, lambdas, r))
            plain.append(plain_loop.epochs(r))
        a, b = n / min(ours), n / min(plain)
        print(f"trial alone   auxtune {a:8.1f} samples/s   plain PyTorch {b:8.1f} samples/s   ratio {a / b:.3f}")
        members = [Member({"ear": random.uniform(0, 2), "coat": random.uniform(0, 2)}, s)
                   for s in range(args.population)]
        run_population(prep, members[:2])  # warm-up
        start = time.perf_counter()
        outcomes = run_population(prep, members)
        seconds = time.perf_counter() - start
        assert all(getattr(o, "status", None) == "complete" for o in outcomes), outcomes
        per_member = n / seconds
        print(f"population K={args.population}  {per_member:8.1f} samples/s per member "
              f"({per_member * args.population:.1f} in all; {per_member * args.population / a:.2f}× a trial alone)")


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(root: str, attributes: str, workers: int) -> None:
    torch.set_num_threads(1)
    spec = study(Path(root), Path(attributes), 64, 1, workers, 64, "auto")
    prep = prepare(spec)
    start = time.perf_counter()
    result = run_trial(prep, spec.default_lambdas(), seed=0)
    del prep
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"status": result.status, "seconds": time.perf_counter() - start,
                      "train": len(result.epochs), "peak_rss_mib": _peak_rss_mib(), "worker_peak_rss_mib": children}))


def memory(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root, attributes = write_image_folder(Path(tmp) / "images", per_class=args.memory_images // 4, size=64)
        print(f"wrote {args.memory_images} PNGs of 64×64 in {time.perf_counter() - t0:.1f} s "
              f"({args.memory_images * 3 * 64 * 64 * 4 / 2**30:.2f} GiB as float32)")
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(root), str(attributes),
                              str(args.workers)], capture_output=True, text=True, check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"one epoch over {args.memory_images} images ({figures['status']}, {figures['seconds']:.1f} s, "
              f"{args.workers} loader workers): peak RSS {figures['peak_rss_mib']:.0f} MiB (training process), "
              f"{figures['worker_peak_rss_mib']:.0f} MiB (largest loader worker)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory-images", type=int, default=20_000)
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child[0], args.memory_child[1], int(args.memory_child[2]))
        return
    torch.set_num_threads(args.threads)
    memory(args) if args.memory else throughput(args)


if __name__ == "__main__":
    main()
