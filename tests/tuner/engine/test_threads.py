"""One thread policy for every kind of worker (``tuner.engine.threads``): the count each trial trained with reaches its
stored result as ``torch_threads``, through ``auxtune run`` (in-process and worker processes) and ``auxtune
worker``; a bad count is refused before anything starts. (``auxtune serve``: tests/e2e/test_service.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from storage import Store
from tests.tuner.execution.test_study_run import ROOT, spec_dict, write_spec


def auxtune(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "AUXTUNE_THREADS"} | (env or {})
    return subprocess.run([sys.executable, "-m", "tuner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=full)


def recorded_threads(url: str, study: str) -> list[object]:
    with Store(url) as store:
        rows = store.trials(store.get_study(study).id, limit=100)
        assert rows and all(t.state == "complete" for t in rows), [(t.number, t.state, t.reason) for t in rows]
        return [(t.result or {}).get("torch_threads") for t in rows]


def test_run_records_the_thread_count_of_its_in_process_worker_and_of_its_worker_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    r = auxtune("run", str(write_spec(tmp_path, spec_dict("inproc", n_trials=2))), "--db", url, "--threads", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert recorded_threads(url, "inproc") == [2, 2]
    r = auxtune("run", str(write_spec(tmp_path, spec_dict("procs", n_trials=2))), "--db", url, "--workers", "2",
                env={"AUXTUNE_THREADS": "3"})  # inherited by the worker processes
    assert r.returncode == 0, r.stdout + r.stderr
    assert recorded_threads(url, "procs") == [3, 3]


def test_a_worker_by_hand_defaults_to_one_thread_and_a_bad_count_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    with Store(url) as store:
        from tuner.execution.submit import create_or_resume
        from tuner.spec import parse_spec

        create_or_resume(store, parse_spec(spec_dict("byhand", n_trials=2)))
    r = auxtune("worker", "--db", url, "--study", "byhand", "--no-forever")
    assert r.returncode == 0, r.stdout + r.stderr
    assert recorded_threads(url, "byhand") == [1, 1]  # the default, whatever the machine's core count

    for args, env, field in ((["worker", "--db", url, "--threads", "0"], {}, "--threads: '0'"),
                             (["run", "nope.yaml", "--db", url], {"AUXTUNE_THREADS": "lots"}, "$AUXTUNE_THREADS"),
                             (["serve", "--db", url, "--threads", "-1"], {}, "--threads: '-1'")):
        r = auxtune(*args, env=env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert f"{field}" in r.stdout + r.stderr and "whole number from 1" in r.stdout + r.stderr, r.stderr
        assert "Traceback" not in r.stderr
