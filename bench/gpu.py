"""The one GPU check: what auxtune does on a CUDA GPU, in a few minutes, as figures.

Parts, each run as its own process under its own timeout (an error or a timeout in one is printed and recorded, and
the next part runs):

- ``tests``: the test suite's GPU-marked tests (``pytest -m gpu``: a trial on cuda, deterministic repeats, memory
  across trials with real out-of-memory errors, ``--gpus all`` with the real devices, an out-of-memory trial run by
  a real worker);
- ``population``: ``bench/population.py --device cuda`` at K = 1 and 16 (goal: ≥ 8× trials/hour at K = 16);
- ``precision``: bf16 vs fp32. The engine has no precision option yet, so this times the engine's own model (a
  wide synthetic MLP) doing forward/backward/step under ``torch.autocast(bfloat16)`` against plain fp32, not trials;
- ``workers``: trials/s of a real small study with 2 workers on one GPU (``--gpus 0 --workers-per-gpu 2``) vs 1;
- ``images``: the images workload's training samples/s, if the tree has an ``images`` workload (else skipped).

    python bench/gpu.py [--quick] [--parts tests,population,precision,workers,images] [--out FILE]

Every figure is printed, and all are written as JSON to ``--out`` (default ``$OUT/gpu.json`` when ``$OUT`` is
set). Without CUDA it says "no CUDA: skipped" and exits 0. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
#: Each part's timeout in seconds (the whole check stays well under 10 minutes), and with --quick.
TIMEOUTS_S = {"tests": 180, "population": 150, "precision": 60, "workers": 150, "images": 90}
QUICK_TIMEOUTS_S = {"tests": 150, "population": 60, "precision": 30, "workers": 90, "images": 45}
FIGURES = "FIGURES "


def part_tests(quick: bool, device: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(done.stdout[-4000:], done.stderr[-2000:], sep="\n")
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)",
                                                      summary)}
    return {"exit_code": done.returncode, "summary": summary, **counts}


def part_population(quick: bool, device: str) -> dict[str, Any]:
    cmd = [sys.executable, str(ROOT / "bench" / "population.py"), "--device", device, "--sizes", "1,16",
           "--epochs", "2" if quick else "5", "--seq-trials", "2", "--workloads", "synthetic" if quick else
           "digits,synthetic"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    print(done.stdout, done.stderr[-2000:], sep="\n")
    rows = re.findall(r"^(\w+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)x", done.stdout, re.M)
    ratios = {f"{name}_K{k}": float(ratio) for name, k, _, _, ratio in rows}
    at16 = [v for key, v in ratios.items() if key.endswith("_K16")]
    return {"exit_code": done.returncode, "ratios": ratios, "goal_8x_at_K16_met": bool(at16) and min(at16) >= 8.0}


def part_precision(quick: bool, device: str) -> dict[str, Any]:
    import torch

    from tuner.engine.prepared import prepare
    from tuner.spec import parse_spec

    spec = parse_spec({"name": "bf16", "workload": {"name": "synthetic", "params": {
        "n_train": 8192, "n_val": 64, "n_test": 64, "dim": 1000}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
        "training": {"batch_size": 1024 if quick else 4096, "hidden": 1024 if quick else 4096, "device": device}})
    prep = prepare(spec)
    batch = prep.data.train.take(torch.arange(spec.training.batch_size, device=prep.device))
    lambdas = {"helpful": 1.0, "harmful": 0.5}
    steps = 10 if quick else 40
    rates = {name: _steps_per_s(prep, batch, lambdas, dtype, steps)
             for name, dtype in (("fp32", None), ("bf16", torch.bfloat16))}
    width = spec.training.hidden
    print(f"engine model (MLP 1000 → {width} → {width}, batch {spec.training.batch_size}) steps/s: "
          f"fp32 {rates['fp32']:.1f}, bf16 {rates['bf16']:.1f}, bf16/fp32 {rates['bf16'] / rates['fp32']:.2f}x "
          "(the engine has no precision option yet: this times forward/backward/step of its model, not trials)")
    return {"fp32_steps_per_s": rates["fp32"], "bf16_steps_per_s": rates["bf16"],
            "bf16_over_fp32": rates["bf16"] / rates["fp32"], "note": "engine has no precision option: model steps"}


def _steps_per_s(prep: Any, batch: Any, lambdas: dict[str, float], dtype: Any, steps: int) -> float:
    """Training steps per second of a fresh model of ``prep`` on ``batch`` (under autocast to ``dtype`` if given)."""
    import torch

    from tuner.engine.losses import compute_losses
    from tuner.engine.optim import make_optimizer

    training = prep.spec.training
    model = prep.new_model(0)
    opt = make_optimizer(model.param_groups(training.lr), training, training.lr)

    def sync() -> None:
        if prep.device.type == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        with torch.autocast(prep.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            bd = compute_losses(model(batch.x), batch.y, batch.aux, prep.task_losses, lambdas, prep.temperatures)
        opt.zero_grad(set_to_none=True)
        bd.total.backward()
        opt.step()

    for _ in range(3):  # warm-up: kernels chosen, memory cached
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps / (time.perf_counter() - start)


def part_workers(quick: bool, device: str) -> dict[str, Any]:
    from storage import Store
    from tuner.execution.local import run_workers
    from tuner.execution.submit import create_or_resume
    from tuner.spec import parse_spec

    n_trials = 8 if quick else 16
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            url = f"sqlite:///{Path(tmp) / f'w{workers}.db'}"
            spec = parse_spec({"name": f"gpu-workers-{workers}", "workload": {"name": "synthetic", "params": {
                "n_train": 4000, "n_val": 500, "n_test": 500}},
                "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
                "search": {"algorithm": "random", "n_trials": n_trials, "seed": 0},
                "training": {"epochs": 5, "batch_size": 64, "device": device}})
            with Store(url) as store:
                study = create_or_resume(store, spec)
            start = time.perf_counter()
            run_workers(url, study.name, 0, lambda: None, gpus=[0] * workers)
            wall = time.perf_counter() - start
            with Store(url) as store:
                trials = [t for t in store.trials(study.id) if t.started_at and t.finished_at]
            done = [t for t in trials if t.state == "complete"]
            starts = [t.started_at for t in trials if t.started_at is not None]
            ends = [t.finished_at for t in trials if t.finished_at is not None]
            span = (max(ends) - min(starts)).total_seconds()
            figures[f"{workers}_worker"] = {"trials_per_s": len(done) / span, "complete": len(done),
                                            "span_s": span, "wall_s_with_start": wall}
            print(f"{workers} worker(s) on GPU 0 ({device}): {len(done)} trials complete, "
                  f"{len(done) / span:.3f} trials/s "
                  f"(first start to last finish, {span:.1f} s; {wall:.1f} s with the workers' start)", flush=True)
    figures["two_over_one"] = figures["2_worker"]["trials_per_s"] / figures["1_worker"]["trials_per_s"]
    print(f"2 workers / 1 worker on one GPU: {figures['two_over_one']:.2f}x trials/s")
    return figures


def part_images(quick: bool, device: str) -> dict[str, Any]:
    import yaml

    from tuner.engine.loop import run_trial
    from tuner.engine.prepared import prepare
    from tuner.spec import load_spec
    from tuner.workloads import registered_workloads

    if "images" not in registered_workloads():
        print("images: skipped: this tree has no 'images' workload yet")
        return {"skipped": "no images workload in this tree"}
    examples = [p for p in sorted((ROOT / "examples").rglob("*.y*ml"))
                if (yaml.safe_load(p.read_text()) or {}).get("workload", {}).get("name") == "images"]
    if not examples:
        print("images: skipped: no example spec uses the images workload")
        return {"skipped": "no example spec for images"}
    spec = load_spec(examples[0])  # its paths relative to the file, as auxtune reads it
    training = spec.training.model_copy(update={"epochs": 1 if quick else 2, "device": device})
    spec = spec.model_copy(update={"training": training, "sanity": spec.sanity.model_copy(update={"enabled": False})})
    prep = prepare(spec)
    result = run_trial(prep, spec.default_lambdas())
    seconds = sum(e.seconds for e in result.epochs)
    rate = len(prep.data.train) * len(result.epochs) / seconds
    print(f"images ({examples[0].relative_to(ROOT)}): {rate:.0f} training samples/s on {prep.device}, "
          f"{len(result.epochs)} epoch(s) of {len(prep.data.train)}")
    return {"samples_per_s": rate, "spec": str(examples[0].relative_to(ROOT)), "train": len(prep.data.train)}


PARTS = {"tests": part_tests, "population": part_population, "precision": part_precision,
         "workers": part_workers, "images": part_images}


def run_part(name: str, quick: bool, timeout_s: float, device: str) -> dict[str, Any]:
    """``bench/gpu.py --part NAME`` in its own process, at most ``timeout_s``; its figures, or what went wrong."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--device", device,
           *(["--quick"] if quick else [])]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        print(out[-4000:])
        return {"error": f"timed out after {timeout_s:.0f} s"}
    lines = done.stdout.splitlines()
    print("\n".join(line for line in lines if not line.startswith(FIGURES)))
    found = [json.loads(line[len(FIGURES):]) for line in lines if line.startswith(FIGURES)]
    if done.returncode != 0 or not found:
        print(done.stderr[-4000:])
        return {"error": f"exit code {done.returncode}: {done.stderr.strip().splitlines()[-1:] or ['no output']}"}
    return {**found[-1], "seconds": round(time.perf_counter() - start, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller settings, shorter timeouts")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts, comma-separated")
    parser.add_argument("--out", default=None, help="JSON file of the figures (default: $OUT/gpu.json if $OUT)")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # one part, in its own process
    # Only to try the parts' code on a machine without a GPU (--device cpu): the figures then mean nothing.
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        try:
            figures = PARTS[args.part](args.quick, args.device)
        except Exception as exc:  # printed and recorded; the check goes on with the next part
            import traceback

            traceback.print_exc()
            figures = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        print(FIGURES + json.dumps(figures), flush=True)
        return 0

    import torch

    out = args.out or (str(Path(os.environ["OUT"]) / "gpu.json") if os.environ.get("OUT") else None)
    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA: skipped (torch sees no CUDA GPU here; run bench/gpu.py on a machine with one)")
    else:
        props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]  # none: --device cpu
        report["gpus"] = [{"index": i, "name": p.name, "memory_bytes": p.total_memory} for i, p in enumerate(props)]
        report["cuda_version"] = torch.version.cuda
        print(f"torch {torch.__version__} (CUDA {torch.version.cuda}); GPUs: "
              + ", ".join(f"{i}: {p.name} ({p.total_memory / 2**30:.0f} GiB)" for i, p in enumerate(props)))
        timeouts = QUICK_TIMEOUTS_S if args.quick else TIMEOUTS_S
        for name in args.parts.split(","):
            print(f"\n== {name} (at most {timeouts[name]} s) ==", flush=True)
            report[name] = run_part(name, args.quick, timeouts[name], args.device)
        print("\n== figures ==")
        print(json.dumps({k: v for k, v in report.items() if k in PARTS}, indent=2))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2))
        print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
