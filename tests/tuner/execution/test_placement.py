"""Placing workers on GPUs (``tuner.execution.placement``): one worker process per listed GPU, each started with
``CUDA_VISIBLE_DEVICES`` set to its GPU and recording that GPU (as the host numbers it) in the store; restarts keep
each worker's GPU; without CUDA, ``--gpus`` is refused at once.

This machine has no GPU: the placement tests make it look as if it had some through the one documented hook,
``$AUXTUNE_FAKE_GPUS`` (read only by the placement and device-probe functions); the worker processes, their
environments and the store are real.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from storage import Store, WorkerRecord
from tests.tuner.execution.test_study_run import ROOT, _wait
from tuner.cli.main import app
from tuner.execution.placement import FAKE_GPUS_ENV, PlacementError, gpu_environment, placement, worker_device

FAKE = "Fake A100:40,Fake H100:80,Fake L4:24"  # three GPUs, host indices 0, 1, 2
GIB = 1 << 30


def environment_of(pid: int) -> dict[str, str]:
    """The environment a running process was started with (Linux ``/proc``)."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_placement_lists_each_gpu_workers_per_gpu_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_GPUS_ENV, FAKE)
    assert placement("all") == [0, 1, 2]
    assert placement("2,0", workers_per_gpu=2) == [2, 2, 0, 0]
    for bad, says in (("3", "GPU 3 is not on this machine, which has 3"), ("0,0", "lists a GPU twice"),
                      ("first", "is not 'all' or a list"), ("", "is not 'all' or a list")):
        with pytest.raises(PlacementError, match=says) as info:
            placement(bad)
        assert str(info.value).startswith("--gpus: ")
    with pytest.raises(PlacementError, match="--workers-per-gpu: 0 is not from 1"):
        placement("all", workers_per_gpu=0)


def test_placement_within_a_restricted_cuda_visible_devices_keeps_to_those_gpus(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_environment(1)["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")  # this process sees host GPUs 5 and 7, as its 0 and 1
    assert gpu_environment(1)["CUDA_VISIBLE_DEVICES"] == "7"


def test_a_placed_worker_records_its_gpu_as_the_host_numbers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_GPUS_ENV, FAKE)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    assert worker_device(None) == ("cuda:0", {"index": 2, "name": "Fake L4", "memory_bytes": 24 * GIB})
    assert worker_device("cpu") == ("cpu", None)


@pytest.mark.parametrize("command", [["serve", "--gpus", "all"], ["worker", "--gpus", "0"],
                                     ["serve", "--gpus", "0", "--workers-per-gpu", "2"]])
def test_without_cuda_gpus_is_refused_at_once_naming_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              command: list[str]) -> None:
    monkeypatch.delenv(FAKE_GPUS_ENV, raising=False)  # this machine as it is: torch sees no CUDA
    db = tmp_path / "never.db"
    result = CliRunner().invoke(app, [*command, "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    assert "--gpus: this machine has no CUDA GPU" in " ".join(result.output.split())
    assert not db.exists()  # refused before anything was started or opened


def test_gpu_options_that_contradict_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAKE_GPUS_ENV, FAKE)
    for args, flag in ((["--gpus", "0", "--device", "cpu"], "--device"), (["--workers-per-gpu", "2"],
                                                                          "--workers-per-gpu")):
        result = CliRunner().invoke(app, ["worker", *args, "--db", "sqlite:///unused.db"])
        assert result.exit_code == 2 and f"error: {flag}" in result.output, result.output


def test_one_worker_per_gpu_each_seeing_its_own_and_restarted_on_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'placed.db'}"
    env = {**os.environ, FAKE_GPUS_ENV: FAKE}
    launcher = subprocess.Popen([sys.executable, "-m", "tuner.cli", "worker", "--gpus", "2,0", "--db", url],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def registered() -> list[WorkerRecord]:
            if not (tmp_path / "placed.db").exists():
                return []
            with Store(url) as s:
                return [w for w in s.workers() if _alive(w.pid)]

        _wait(lambda: len(registered()) == 2, 120, "a worker on each of GPUs 2 and 0", every=0.5)
        by_gpu = {w.gpu["index"]: w for w in registered() if w.gpu}
        assert set(by_gpu) == {0, 2}
        for index, w in by_gpu.items():
            assert w.device == "cuda:0" and w.host == socket.gethostname()
            assert environment_of(w.pid)["CUDA_VISIBLE_DEVICES"] == str(index)  # it sees its GPU alone
        assert by_gpu[2].gpu == {"index": 2, "name": "Fake L4", "memory_bytes": 24 * GIB}
        assert by_gpu[0].gpu == {"index": 0, "name": "Fake A100", "memory_bytes": 40 * GIB}

        os.kill(by_gpu[2].pid, signal.SIGKILL)  # the launcher restarts it (after 1 s) on the same GPU
        _wait(lambda: any(w.gpu and w.gpu["index"] == 2 and w.pid != by_gpu[2].pid for w in registered()), 120,
              "the worker of GPU 2 restarted")
        again = next(w for w in registered() if w.gpu and w.gpu["index"] == 2)
        assert environment_of(again.pid)["CUDA_VISIBLE_DEVICES"] == "2"
    finally:
        launcher.send_signal(signal.SIGTERM)
        out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, out
    with Store(url) as s:
        assert not any(_alive(w.pid) for w in s.workers())  # SIGTERM to the launcher stopped its workers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/environ").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_status_shows_each_live_worker_with_its_device(tmp_path: Path) -> None:
    from tests.tuner.execution.test_study_run import spec_dict
    from tuner.execution.submit import create_or_resume
    from tuner.spec import parse_spec

    url = f"sqlite:///{tmp_path / 'status.db'}"
    with Store(url) as store:
        study = create_or_resume(store, parse_spec(spec_dict("shown", n_trials=2)))
        h100 = {"index": 1, "name": "Fake H100", "memory_bytes": 80 * GIB}
        store.register_worker("w-gpu", socket.gethostname(), "cuda:0", os.getpid(), h100)  # alive: this process
        store.register_worker("w-gone", socket.gethostname(), "cpu", 2**22 + 1)  # no such process: not shown
        store.claim_trial(study.id, "w-gpu", lambda trial: {"helpful": 1.0, "harmful": 0.0})
    shown = CliRunner().invoke(app, ["status", "shown", "--db", url])
    assert shown.exit_code == 0, shown.output
    assert (f"worker w-gpu on {socket.gethostname()}: GPU 1 (Fake H100, 80 GiB) as cuda:0, trial 0 of this study"
            in " ".join(shown.output.split()))
    assert "w-gone" not in shown.output
    doc = CliRunner().invoke(app, ["status", "shown", "--db", url, "--json"])
    [worker] = json.loads(doc.output)["workers"]
    assert worker["gpu"] == h100 and worker["current_trial"] == 0
