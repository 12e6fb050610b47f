"""Workers that train populations (``population: {size: K}``, ``--population K``) against a real SQLite file:
every member is its own trial in the store, and a worker that stops or dies gives every member back."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from storage import Store, StudyRecord, TrialRecord
from tests.tuner.execution.test_study_run import _wait
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.spec import parse_spec

ROOT = Path(__file__).resolve().parents[3]


def spec_doc(name: str, n_trials: int, epochs: int, size: int) -> dict[str, Any]:
    return {
        "name": name,
        "workload": {"name": "synthetic", "params": {"n_train": 64, "n_val": 64, "n_test": 64}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
        "search": {"algorithm": "random", "n_trials": n_trials, "seed": 0},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.003},
        "population": {"size": size},
    }


def run_in_process(url: str, doc: dict[str, Any], population: int | None = None) -> dict[int, TrialRecord]:
    with Store(url) as store:
        study = create_or_resume(store, parse_spec(doc))
        Worker(store, config=WorkerConfig(population=population)).run([doc["name"]])
        return {t.number: t for t in store.trials(study.id)}


def test_population_trials_are_the_trials_a_lone_worker_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    doc = spec_doc("pop-same", n_trials=7, epochs=3, size=4)
    with caplog.at_level(logging.INFO, logger="tuner.execution.population"):
        together = run_in_process(f"sqlite:///{tmp_path / 'pop.db'}", doc)
    populations = [r.getMessage() for r in caplog.records if "as one population" in r.getMessage()]
    assert populations == ["study pop-same: training trials [0, 1, 2, 3] as one population",
                           "study pop-same: training trials [4, 5, 6] as one population"]
    alone = run_in_process(f"sqlite:///{tmp_path / 'alone.db'}", doc, population=1)

    assert sorted(together) == sorted(alone) == list(range(7))
    with Store(f"sqlite:///{tmp_path / 'pop.db'}") as store:
        study = store.get_study("pop-same")
        assert study.status == "done"
        for n, t in together.items():
            assert t.state == "complete" and t.attempt == 1, (n, t.state, t.reason)
            assert [e.epoch for e in store.epochs(study.id, n)] == [0, 1, 2]
            sanity = store.sanity(study.id, n)
            assert sanity is not None and sanity.passed
    # the same sampler asked in the same order: the same λ per trial, and the same outcome to rounding
    for n in range(7):
        assert together[n].params == alone[n].params
        assert together[n].value is not None and alone[n].value is not None
        assert abs(together[n].value - alone[n].value) <= 1 / 64 + 1e-9, n
    assert len({tuple(sorted(t.params.items())) for t in together.values()}) == 7, "each trial its own λ"


#: Epochs of the killed study: the victim, writing its epochs every 0.05 s, is seen training and killed long
#: before it could finish them (asserted), and the rescuer trains them all again in about a second.
KILLED_EPOCHS = 150
#: The workers' lease: a killed worker's trials are claimable again this many seconds after its last heartbeat.
LEASE_S = 2.0


def worker_proc(url: str, study: str, population: int) -> subprocess.Popen[str]:
    """A worker process; it writes epochs every 0.05 s (not every second), so a test sees them train at once."""
    cmd = [sys.executable, "-m", "tuner.cli", "worker", "--no-forever", "--db", url, "--study", study, "--threads", "1",
           "--lease-timeout", str(LEASE_S), "--heartbeat", "0.2", "--epoch-flush", "0.05",
           "--population", str(population)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def running(store: Store, study: StudyRecord) -> list[TrialRecord]:
    return [t for t in store.trials(study.id) if t.state == "running"]


def training(store: Store, study: StudyRecord, k: int) -> list[TrialRecord]:
    """The running trials once ``k`` of them have stored an epoch (else an empty list)."""
    trials = running(store, study)
    with_epochs = [t for t in trials if store.epochs(study.id, t.number)]
    return trials if len(with_epochs) >= k else []


def start_population(store: Store, study: StudyRecord, k: int) -> tuple[subprocess.Popen[str], list[TrialRecord]]:
    """Start a worker process with population ``k``; return it and its trials as soon as all ``k`` have stored an
    epoch (polled every 20 ms once it holds them)."""
    proc = worker_proc(store.url, study.name, k)
    try:
        _wait(lambda: len(running(store, study)) >= k, 120, f"{k} trials claimed")
        _wait(lambda: bool(training(store, study, k)), 60, f"{k} members training", every=0.02)
    except BaseException:
        proc.kill()
        raise
    return proc, training(store, study, k)


def population_study(tmp_path: Path, name: str, epochs: int) -> tuple[Store, StudyRecord]:
    """A study of three trials, population size 3, in a fresh SQLite file."""
    store = Store(f"sqlite:///{tmp_path / name}.db")
    return store, create_or_resume(store, parse_spec(spec_doc(name, n_trials=3, epochs=epochs, size=3)))


def test_sigterm_gives_every_member_back(tmp_path: Path) -> None:
    store, study = population_study(tmp_path, "pop-term", epochs=2000)
    with store:
        proc, _ = start_population(store, study, 3)
        try:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        rows = store.trials(study.id)
        assert sorted(t.number for t in rows) == [0, 1, 2]
        assert all(t.state == "queued" and t.attempt == 1 for t in rows), [(t.number, t.state) for t in rows]
        assert all(store.epochs(study.id, t.number) == [] for t in rows), "a given-back attempt leaves no rows"


def test_sigkilled_population_is_requeued_and_finished_by_another_worker(tmp_path: Path) -> None:
    store, study = population_study(tmp_path, "pop-kill", epochs=KILLED_EPOCHS)
    with store:
        victim, killed = start_population(store, study, 3)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        # killed mid-population: all three still running, each with some but not all of its epochs stored
        stored = {t.number: len(store.epochs(study.id, t.number)) for t in killed}
        assert [t.state for t in store.trials(study.id)] == ["running"] * 3
        assert all(0 < n < KILLED_EPOCHS for n in stored.values()), stored
        assert len(killed) == 3 and len({t.worker_id for t in killed}) == 1
        # another worker (in this process: no second start-up of seconds) claims them once the lease expires
        rescuer = Worker(store, config=WorkerConfig(population=3, lease_timeout_s=LEASE_S, heartbeat_s=0.2,
                                                    poll_s=0.1))
        assert rescuer.run([study.name]) == 3
        rows = {t.number: t for t in store.trials(study.id)}
        assert sorted(rows) == [0, 1, 2]
        assert all(t.state == "complete" for t in rows.values()), [(t.number, t.state, t.reason) for t in rows.values()]
        for t in killed:
            again = rows[t.number]
            assert again.attempt == 2 and again.worker_id == rescuer.id != t.worker_id
            assert again.params == t.params  # requeued with the same λ
            assert "expired" in again.reason
            # the dead attempt's epochs do not mix in
            assert [e.epoch for e in store.epochs(study.id, t.number)] == list(range(KILLED_EPOCHS))
