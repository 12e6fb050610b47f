"""Real worker processes sharing one store, on SQLite and on PostgreSQL (the issue's "done when")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from storage import Store
from tests.storage.store_factories import CONTROLS, make_study

WORKER = str(Path(__file__).with_name("store_worker.py"))


def start(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def results(procs: list[subprocess.Popen[str]], timeout: float = 90) -> list[dict]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=timeout)
        assert p.returncode == 0, f"worker exited with {p.returncode}:\n{stderr}"
        assert "database is locked" not in stderr, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def assert_all_complete_once(store: Store, study_id: int, n: int) -> None:
    trials = store.trials(study_id)
    assert [t.number for t in trials] == list(range(n))
    assert {t.state for t in trials} == {"complete"}
    frozen = optuna.load_study(study_name=store.get_study(study_id).name, storage=store.url).trials
    assert sorted(t.number for t in frozen) == list(range(n))
    assert all(t.state == TrialState.COMPLETE for t in frozen)
    assert store.get_study(study_id).status == "done"


def test_four_processes_forty_trials_exactly_once(store: Store, tmp_path: Path) -> None:
    n = 40
    study = make_study(store, n_trials=n, enqueue=CONTROLS)
    go = tmp_path / "go"
    procs = [start("run", store.url, study.id, f"w{i}", i, 60, 80, go) for i in range(4)]
    for p in procs:  # every worker has opened the store: now let them race
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.communicate(timeout=5)[1]
    go.touch()
    outs = results(procs)
    errors = [e for o in outs for e in o["errors"]]
    assert errors == []
    finished = sorted(num for o in outs for num in o["done"])
    assert finished == list(range(n))  # each number finished once, by exactly one worker
    assert sum(1 for o in outs if o["done"]) >= 2  # the work really was shared
    assert_all_complete_once(store, study.id, n)
    assert [t.params for t in store.trials(study.id)[:2]] == CONTROLS


def test_a_killed_worker_trial_is_requeued_and_finished_by_another(store: Store) -> None:
    n, lease_s = 6, 2.0
    study = make_study(store, n_trials=n)
    victim = start("hang", store.url, study.id, "victim", lease_s)
    assert victim.stdout is not None
    line = victim.stdout.readline()
    assert line, victim.communicate(timeout=5)[1]
    held = json.loads(line)["number"]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    killed_at = time.monotonic()
    outs = results([start("run", store.url, study.id, f"w{i}", i, lease_s, 60) for i in range(2)])
    assert [e for o in outs for e in o["errors"]] == []
    assert time.monotonic() - killed_at >= lease_s  # nobody took it before its lease ran out
    assert_all_complete_once(store, study.id, n)
    trial = store.get_trial(study.id, held)
    assert trial.attempt == 2 and trial.worker_id in ("w0", "w1")
    assert trial.result == {"worker": trial.worker_id}
    assert [e.attempt for e in store.epochs(study.id, held, attempt=1)] == [1]  # the dead attempt's epoch is kept
