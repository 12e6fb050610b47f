"""A whole λ study through the store with real worker processes (``auxtune run``, ``python -m tuner.cli worker``),
on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from storage import Store
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.spec import parse_spec

ROOT = Path(__file__).resolve().parents[3]
FINISHED = ("complete", "pruned", "failed", "failed_sanity")


def spec_dict(name: str, n_trials: int, epochs: int = 1, algorithm: str = "random", **search) -> dict:
    return {
        "name": name,
        "workload": {"name": "synthetic", "params": {"n_train": 64, "n_val": 64, "n_test": 64}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
        "search": {"algorithm": algorithm, "n_trials": n_trials, "seed": 0, **search},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.003},
    }


def write_spec(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def auxtune(*args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def worker_proc(url: str, study: str, stream: int | None, lease_timeout: float = 3.0, *extra: str
                ) -> subprocess.Popen[str]:
    """A worker process that writes its epochs every 0.05 s (not every 1 s), so a test sees a trial training.
    ``stream`` None: the worker derives its own, as one started by hand does."""
    cmd = [sys.executable, "-m", "tuner.cli", "worker", "--no-forever", "--db", url, "--study", study,
           *(["--stream", str(stream)] if stream is not None else []),
           "--threads", "1", "--lease-timeout", str(lease_timeout), "--heartbeat", "0.3", "--epoch-flush", "0.05",
           *extra]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_four_workers_forty_trials_exactly_once(db_url: str, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, spec_dict("parallel", n_trials=40))
    r = auxtune("run", str(spec), "--db", db_url, "--workers", "4")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "database is locked" not in r.stdout + r.stderr
    with Store(db_url) as store:
        study = store.get_study("parallel")
        rows = store.trials(study.id, limit=1000)
        assert sorted(t.number for t in rows) == list(range(40))  # no duplicate, no gap
        assert all(t.state == "complete" for t in rows)
        assert all(t.attempt == 1 for t in rows)
        workers = {t.worker_id for t in rows}
        assert len(workers) >= 2, "the work should be shared by several worker processes"
        assert store.get_study("parallel").status == "done"
        # the controls ran first: λ = 0 and λ = 1 for all searched tasks
        first = {t.number: t.params for t in rows if t.number < 2}
        assert first[0] == {"helpful": 0.0, "harmful": 0.0}
        assert first[1] == {"helpful": 1.0, "harmful": 1.0}


def _wait(predicate, timeout: float, what: str, every: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def test_sigkilled_worker_loses_no_trial(db_url: str) -> None:
    # ~1-2 s per trial (600 epochs of 2 minibatches): the victim is killed within ~0.1 s of its first stored epochs,
    # surely mid-trial (with 1 s epoch writes a whole trial could start and finish unseen).
    epochs = 600
    spec = parse_spec(spec_dict("killed", n_trials=4, epochs=epochs))
    with Store(db_url) as store:
        study = create_or_resume(store, spec)
        victim = worker_proc(db_url, study.name, 0)
        try:
            def victim_training() -> bool:
                running = [t for t in store.trials(study.id) if t.state == "running"]
                return any(store.epochs(study.id, t.number) for t in running)
            _wait(victim_training, 120, "the first worker to train", every=0.02)
            os.kill(victim.pid, signal.SIGKILL)
            running = [t for t in store.trials(study.id) if t.state == "running"]
            assert len(running) == 1
            killed_number = running[0].number
            assert 0 < len(store.epochs(study.id, killed_number)) < epochs  # killed mid-trial
            victim.wait(10)
        finally:
            if victim.poll() is None:
                victim.kill()
        rescuer = worker_proc(db_url, study.name, 1)
        out, _ = rescuer.communicate(timeout=300)
        assert rescuer.returncode == 0, out
        rows = {t.number: t for t in store.trials(study.id)}
        assert sorted(rows) == [0, 1, 2, 3]
        assert all(t.state == "complete" for t in rows.values()), [(t.number, t.state, t.reason) for t in rows.values()]
        assert rows[killed_number].attempt == 2
        assert rows[killed_number].worker_id != running[0].worker_id
        stored = store.epochs(study.id, killed_number)
        assert [e.epoch for e in stored] == list(range(epochs))  # the dead attempt's rows do not mix in


def test_interrupted_run_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    spec = write_spec(tmp_path, spec_dict("resumable", n_trials=8, epochs=60))
    proc = subprocess.Popen([sys.executable, "-m", "tuner.cli", "run", str(spec), "--db", url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with Store(url) as store:
        _wait(lambda: _has_finished(store, "resumable", 2), 120, "two finished trials")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 130, err
        assert "resume" in err
        study = store.get_study("resumable")
        before = {t.number: t for t in store.trials(study.id)}
        assert 2 <= sum(t.state == "complete" for t in before.values()) < 8
        assert not [t for t in before.values() if t.state == "running"], "Ctrl-C must requeue running trials"
    r = auxtune("run", str(spec), "--db", url)
    assert r.returncode == 0, r.stderr
    with Store(url) as store:
        study = store.get_study("resumable")
        after = {t.number: t for t in store.trials(study.id)}
        assert sorted(after) == list(range(8))
        assert all(t.state == "complete" for t in after.values())
        for n, t in before.items():  # finished trials were kept, not rerun
            if t.state == "complete":
                assert after[n].value == t.value and after[n].finished_at == t.finished_at


def _has_finished(store: Store, name: str, n: int) -> bool:
    try:
        study = store.get_study(name)
    except Exception:
        return False
    return sum(1 for t in store.trials(study.id) if t.state in FINISHED) >= n


def test_conflicting_spec_and_bad_database_are_one_clear_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    doc = spec_dict("clash", n_trials=2)
    assert auxtune("run", str(write_spec(tmp_path, doc)), "--db", url).returncode == 0
    doc["training"]["lr"] = 0.01
    r = auxtune("run", str(write_spec(tmp_path, doc)), "--db", url)
    assert r.returncode == 2
    assert "training.lr" in r.stderr and "rename" in r.stderr.replace("new name", "rename")
    for bad in ("postgresql://postgres@127.0.0.1:1/nowhere", f"sqlite:///{tmp_path}/missing/dir/x.db"):
        r = auxtune("studies", "--db", bad)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_run_studies_and_status_count_the_front_of_a_multi_objective_study(tmp_path: Path) -> None:
    """A multi-objective study has no single best: ``run``'s progress, ``studies`` and ``status`` say how many
    trials are on its Pareto front so far and over which objectives; a single-objective study's lines stay."""
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    multi = spec_dict("two-objectives", n_trials=5, algorithm="nsga2")
    multi["objective"] = [{"metric": "val_accuracy"}, {"metric": "val_loss:harmful"}]
    ran = auxtune("run", str(write_spec(tmp_path, multi)), "--db", url)
    assert ran.returncode == 0, ran.stderr
    single = auxtune("run", str(write_spec(tmp_path, spec_dict("one-objective", n_trials=2))), "--db", url)
    assert single.returncode == 0, single.stderr
    with Store(url) as store:
        study = store.get_study("two-objectives")
        front, complete = len(store.pareto_front(study.id)), len(store.objective_values(study.id))
    assert front >= 1 and complete == 5
    out = " ".join(ran.stdout.split())
    assert "Pareto front of val_accuracy ↑, val_loss:harmful ↓" in out and "`auxtune best two-objectives`" in out
    assert f"5/5 running 0 · failed 0 · Pareto front {front} " in out, out  # the progress bar's last state
    assert f"done: 5 trials; {front} of 5 complete trials on the Pareto front of val_accuracy, val_loss:harmful" \
        in out and "best val_accuracy =" not in out
    assert "Pareto" not in single.stdout and "· best 0." in single.stdout and "best val_accuracy =" in single.stdout

    listed = auxtune("studies", "--db", url, "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["two-objectives"]["pareto"] == {"metrics": ["val_accuracy", "val_loss:harmful"],
                                                "directions": ["maximize", "minimize"], "count": front,
                                                "complete": complete}
    assert rows["two-objectives"]["best_primary_objective"] == "val_accuracy"
    assert "pareto" not in rows["one-objective"] and "best_primary_objective" not in rows["one-objective"]
    table = auxtune("studies", "--db", url).stdout
    assert f"Pareto front: {front}" in table and "val_loss:harmful" in table
    assert "`auxtune best NAME`" in " ".join(table.split())
    assert f"{rows['one-objective']['best']:.4f}" in table

    status = auxtune("status", "two-objectives", "--db", url)
    assert status.returncode == 0, status.stderr
    said = " ".join(status.stdout.split())
    assert f"Pareto front so far: {front} of 5 complete trials, over val_accuracy (maximize), val_loss:harmful " \
        "(minimize)" in said and "`auxtune best two-objectives`" in said
    assert json.loads(auxtune("status", "two-objectives", "--db", url, "--json").stdout)["pareto"]["count"] == front


def _run_in_process(url: str, doc: dict) -> Store:
    store = Store(url)
    create_or_resume(store, parse_spec(doc))
    Worker(store, config=WorkerConfig(lease_timeout_s=60, heartbeat_s=5)).run([doc["name"]])
    return store


@pytest.mark.parametrize("algorithm", ["tpe", "gp", "ax"])
def test_search_ranks_harmful_below_helpful(algorithm: str, tmp_path: Path) -> None:
    doc = spec_dict(f"truth-{algorithm}", n_trials=16, epochs=40, algorithm=algorithm)
    doc["workload"]["params"] = {}  # the documented defaults: 300 training samples
    with _run_in_process(f"sqlite:///{tmp_path / 'truth.db'}", doc) as store:
        study = store.get_study(doc["name"])
        assert store.counts_by_state(study.id).get("complete") == 16
        best = store.best_trial(study.id)
        assert best is not None
        assert best.params["harmful"] < best.params["helpful"], best


@pytest.mark.parametrize("algorithm", ["tpe", "gp", "cmaes", "qmc", "random", "grid", "ax"])
def test_every_sampler_runs(algorithm: str, tmp_path: Path) -> None:
    doc = spec_dict(f"s-{algorithm}", n_trials=5, algorithm=algorithm)
    with _run_in_process(f"sqlite:///{tmp_path / 's.db'}", doc) as store:
        study = store.get_study(doc["name"])
        rows = store.trials(study.id)
        assert len(rows) == 5 and all(t.state == "complete" for t in rows)
        assert len({tuple(sorted(t.params.items())) for t in rows}) == 5, "each trial tries new λ"


@pytest.mark.parametrize("pruner", ["none", "median", "hyperband", "wilcoxon"])
def test_every_pruner_runs(pruner: str, tmp_path: Path) -> None:
    doc = spec_dict(f"p-{pruner}", n_trials=8, epochs=6, pruner={"name": pruner, "warmup_epochs": 1})
    with _run_in_process(f"sqlite:///{tmp_path / 'p.db'}", doc) as store:
        study = store.get_study(doc["name"])
        rows = store.trials(study.id)
        assert len(rows) == 8 and all(t.state in ("complete", "pruned") for t in rows)
        for t in rows:  # a pruned trial stopped at some epoch after the warm-up one (the last one included)
            n = len(store.epochs(study.id, t.number))
            assert n == 6 if t.state == "complete" else 1 <= n <= 6


def test_a_broken_set_up_fails_the_study_at_its_gate_before_any_trial(tmp_path: Path) -> None:
    doc = spec_dict("broken-study", n_trials=3)
    doc["training"].update({"lr": 1e6, "optimizer": "sgd"})
    with _run_in_process(f"sqlite:///{tmp_path / 'g.db'}", doc) as store:
        study = store.get_study("broken-study")
        assert study.status == "failed"
        assert "study-level sanity gate failed" in study.status_reason
        assert "non-finite loss" in study.status_reason
        assert all(t.state == "queued" for t in store.trials(study.id))  # the controls never ran
        assert store.sanity(study.id, 0) is None


def test_failed_sanity_is_stored_with_reason_and_not_retried(tmp_path: Path) -> None:
    doc = spec_dict("broken", n_trials=3)
    doc["training"].update({"lr": 1e6, "optimizer": "sgd"})
    url = f"sqlite:///{tmp_path / 'b.db'}"
    with Store(url) as store:  # past its study-level gate (as if the set-up broke later): the trial gate runs
        created = create_or_resume(store, parse_spec(doc))
        assert store.transition_study(created.id, "running", ("queued",)) is not None
    with _run_in_process(url, doc) as store:
        study = store.get_study("broken")
        assert study.status == "done" and study.status_reason == ""
        rows = store.trials(study.id)
        assert len(rows) == 3
        assert all(t.state == "failed_sanity" and t.attempt == 1 for t in rows)
        assert all("non-finite loss" in t.reason for t in rows)
        sanity = store.sanity(study.id, 0)
        assert sanity is not None and not sanity.passed


def test_workers_stop_when_the_process_that_started_them_dies(tmp_path: Path) -> None:
    """``auxtune serve``/``run`` SIGKILLed: its workers (own session, so no signal reaches them) notice within
    about a second, give their running trial back to the queue and exit, instead of polling forever."""
    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    spec = parse_spec(spec_dict("orphan", n_trials=2, epochs=10_000))  # would train for many minutes
    with Store(url) as store:
        study = create_or_resume(store, spec)
        parent = subprocess.Popen(
            [sys.executable, "-c", "import sys, time; from tuner.execution.local import start_workers; "
             "p = start_workers(sys.argv[1], 1, '--study', 'orphan', '--forever', '--epoch-flush', '0.05'); "
             "print(p[0].pid, flush=True); time.sleep(600)", url],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            assert parent.stdout is not None
            worker_pid = int(parent.stdout.readline())
            _wait(lambda: any(t.state == "running" and store.epochs(study.id, t.number)
                              for t in store.trials(study.id)), 120, "the worker to train", every=0.05)
        finally:
            parent.kill()
            parent.wait(10)

        def worker_gone() -> bool:
            try:
                os.kill(worker_pid, 0)
            except ProcessLookupError:
                return True
            return False
        try:
            _wait(worker_gone, 30, "the orphaned worker to exit")
        finally:
            if not worker_gone():
                os.kill(worker_pid, signal.SIGKILL)
        rows = store.trials(study.id)
        assert [(t.state, t.attempt) for t in rows] == [("queued", 1), ("queued", 1)]  # given back, none lost
        assert all(not store.epochs(study.id, t.number) for t in rows)  # the abandoned attempt left nothing
