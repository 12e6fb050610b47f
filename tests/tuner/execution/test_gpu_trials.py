"""GPU-safe trials: an out-of-memory error fails that trial (its reason naming the batch size and device) and the
worker takes the next; every stored trial records its cuDNN/determinism flags (``tuner.engine.gpu``).

The out-of-memory error is injected by a test-only plugin workload (``oom_plugin.py``: its model raises
``torch.cuda.OutOfMemoryError`` in forward on odd-numbered trials), registered through the real entry-point
mechanism (a ``.dist-info`` on the path) and run by a real worker process on a real SQLite store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Store
from tests.tuner.execution.oom_plugin import MESSAGE
from tests.tuner.execution.test_study_run import ROOT, spec_dict
from tuner.analysis.confirm import request_confirmation
from tuner.execution.submit import create_or_resume
from tuner.spec import parse_spec
from tuner.workloads import _plugins


@pytest.fixture
def oom_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder whose ``.dist-info`` registers ``oom-synthetic``; on ``sys.path`` here while the test runs."""
    plugin = tmp_path / "plugin"
    dist = plugin / "auxtune_oom_test-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: auxtune-oom-test\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[auxtune.workloads]\noom-synthetic = tests.tuner.execution.oom_plugin:OomWorkload\n")
    monkeypatch.syspath_prepend(str(plugin))
    _plugins.cache_clear()
    yield plugin
    monkeypatch.undo()
    _plugins.cache_clear()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_out_of_memory_fails_that_trial_and_the_worker_takes_the_next(tmp_path: Path, oom_plugin: Path,
                                                                      device: str) -> None:
    """On the CPU the error is raised as CUDA raises it; on a GPU the model really asks for too much memory."""
    url = f"sqlite:///{tmp_path / 'oom.db'}"
    doc = spec_dict("oom", n_trials=4, epochs=1)
    doc["workload"]["name"] = "oom-synthetic"
    doc["workload"]["params"]["allocate"] = device == "cuda"
    doc["training"].update(deterministic=True, device=device)
    with Store(url) as store:
        study = create_or_resume(store, parse_spec(doc))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(oom_plugin), os.environ.get("PYTHONPATH", str(ROOT))])}
    command = [sys.executable, "-m", "tuner.cli", "worker", "--no-forever", "--db", url, "--study", "oom",
               "--epoch-flush", "0"]
    worker = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert worker.returncode == 0, worker.stderr  # it went on after each out-of-memory trial, and ended when done
    with Store(url) as store:
        trials = {t.number: t for t in store.trials(study.id)}
    assert {n: t.state for n, t in trials.items()} == {0: "complete", 1: "failed", 2: "complete", 3: "failed"}
    for n in (1, 3):
        reason = trials[n].reason
        on = "cpu" if device == "cpu" else "cuda:0 ("  # the GPU's name follows
        assert reason.startswith(f"TrialOutOfMemory: out of memory on {on}"), reason
        assert "at training.batch_size 32: lower training.batch_size" in reason, reason
        assert (MESSAGE in reason) == (device == "cpu") and trials[n].attempt == 1  # failed for good
    for t in trials.values():  # the flags it trained with, beside its thread count; deterministic as the spec asks
        assert t.result is not None and t.result["torch_threads"] == 1
        assert t.result["cudnn"] == {"benchmark": False, "deterministic": True, "deterministic_algorithms": True}
    # the confirmation's runs alike: a run whose seed builds the failing trunk fails naming the batch size and
    # device, and the same worker trains the others
    with Store(url) as store:
        request_confirmation(store, store.get_study(study.id), seeds=2)
    worker = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert worker.returncode == 0, worker.stderr
    with Store(url) as store:
        runs = store.runs(study.id)
    assert len(runs) == 4 and {r.state for r in runs} == {"complete", "failed"}, [(r.seed, r.state) for r in runs]
    for r in runs:
        if r.state == "failed":
            assert r.reason is not None and r.reason.startswith(f"TrialOutOfMemory: out of memory on {on}"), r.reason
            assert "at training.batch_size 32: lower training.batch_size" in r.reason, r.reason


def test_trials_record_the_default_cudnn_flags(tmp_path: Path) -> None:
    """Without ``training.deterministic`` a trial turns the flags off again (one worker runs many studies)."""
    from tuner.engine.gpu import apply_determinism, backend_settings
    from tuner.engine.loop import run_trial
    from tuner.engine.prepared import prepare

    apply_determinism(True)
    spec = parse_spec(spec_dict("plain", n_trials=1, epochs=1))
    assert "deterministic" not in spec.model_dump()["training"]  # added later: old studies keep their digest
    run_trial(prepare(spec, "cpu"), {"helpful": 1.0, "harmful": 0.0})
    assert backend_settings() == {"benchmark": False, "deterministic": False, "deterministic_algorithms": False}


def test_a_real_allocation_failure_names_the_batch_size_and_device() -> None:
    import torch

    from tuner.engine.gpu import is_out_of_memory, out_of_memory

    with pytest.raises(RuntimeError) as info:
        torch.empty(1 << 50, dtype=torch.uint8)  # a petabyte: more than any address space holds
    assert is_out_of_memory(info.value) and not is_out_of_memory(ValueError("out of memory"))
    reason = str(out_of_memory(info.value, 64, torch.device("cpu"), members=4))
    assert reason.startswith("out of memory on cpu at training.batch_size 64 with 4 trials trained together "
                             "(population): lower training.batch_size or population.size"), reason
