"""On a real CUDA GPU (marked ``gpu``: skipped without one; ``bench/gpu.py`` runs them): a trial trains on cuda,
``training.deterministic`` repeats a trial bit for bit, memory does not grow over 100 trials with a real
out-of-memory error after each, and ``--gpus all`` places one real worker per GPU, each recording that GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from storage import Store
from tuner.engine.gpu import free_memory, is_out_of_memory, out_of_memory
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.execution.placement import FAKE_GPUS_ENV
from tuner.spec import StudySpec

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[3]
LAMBDAS = {"helpful": 1.0, "harmful": 0.5}


def test_a_deterministic_trial_on_cuda_repeats_bit_for_bit(synthetic_spec: Callable[..., StudySpec]) -> None:
    spec = synthetic_spec(training={"device": "cuda", "deterministic": True, "epochs": 2})
    prep = prepare(spec)
    assert prep.device.type == "cuda"
    first, again = run_trial(prep, LAMBDAS, seed=3), run_trial(prep, LAMBDAS, seed=3)
    assert first.status == "complete" and first.value is not None
    assert [e.val_loss for e in first.epochs] == [e.val_loss for e in again.epochs]


def test_memory_does_not_grow_across_trials_and_real_out_of_memory_errors(
        synthetic_spec: Callable[..., StudySpec]) -> None:
    prep = prepare(synthetic_spec(training={"device": "cuda", "epochs": 1}, sanity={"enabled": False}))
    allocated = []
    for i in range(100):  # 100 trials, each followed by a real out-of-memory error
        run_trial(prep, LAMBDAS, seed=i)
        with pytest.raises(torch.cuda.OutOfMemoryError) as info:
            torch.empty(1 << 50, dtype=torch.uint8, device="cuda")  # a petabyte: a real CUDA out-of-memory error
        assert is_out_of_memory(info.value)
        assert "out of memory on cuda:0 (" in str(out_of_memory(info.value, 32, prep.device))
        del info
        free_memory(prep.device)
        allocated.append(torch.cuda.memory_allocated())
    assert max(allocated[1:]) <= allocated[0] + (1 << 20), allocated[::10]  # within a MiB of the first trial's


def test_gpus_all_places_one_worker_on_each_real_gpu(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gpus.db'}"
    env = {k: v for k, v in os.environ.items() if k not in (FAKE_GPUS_ENV, "CUDA_VISIBLE_DEVICES")}
    done = subprocess.run([sys.executable, "-m", "tuner.cli", "worker", "--gpus", "all", "--no-forever", "--db", url],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Store(url) as store:
        recorded = sorted((w.gpu["index"], w.gpu["name"], w.gpu["memory_bytes"], w.device)
                          for w in store.workers() if w.gpu)
    expected = [(i, (p := torch.cuda.get_device_properties(i)).name, p.total_memory, "cuda:0")
                for i in range(torch.cuda.device_count())]
    assert recorded == expected
