"""Workers ride out a dropped database: every backend of the study's PostgreSQL database is terminated several
times while real worker processes train, and the budget still finishes, each trial exactly once."""

from __future__ import annotations

import time

import optuna
from optuna.trial import TrialState
from sqlalchemy import create_engine, text

from storage import Store
from tests.tuner.execution.test_study_run import spec_dict, worker_proc
from tuner.execution.submit import create_or_resume
from tuner.spec import parse_spec

TERMINATE = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = current_database() AND pid <> pg_backend_pid()")


def test_workers_survive_terminated_connections_and_finish_the_budget_exactly_once(
    fresh_pg_database_url: str,
) -> None:
    url, n = fresh_pg_database_url, 8
    with Store(url) as store:
        study = create_or_resume(store, parse_spec(spec_dict("dropped", n_trials=n, epochs=150)))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    workers = [worker_proc(url, "dropped", i, 10.0) for i in range(2)]
    drops: list[tuple[int, int]] = []  # (backends terminated, trials running at that moment)
    try:
        with admin.connect() as conn:
            deadline = time.monotonic() + 240
            while any(w.poll() is None for w in workers) and time.monotonic() < deadline:
                running = conn.scalar(text("SELECT count(*) FROM auxtune_trials WHERE state = 'running'")) or 0
                if running and len(drops) < 6:
                    drops.append((conn.scalar(text(TERMINATE)) or 0, running))
                    time.sleep(0.7)
                else:
                    time.sleep(0.1)
        outs = [w.communicate(timeout=120)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
        admin.dispose()
    assert [w.returncode for w in workers] == [0, 0], outs
    # mid-study, each drop hit a live connection, and at least one hit more than one (a worker between its
    # reconnect and its next statement holds none, so not every drop finds both)
    assert len(drops) >= 3 and all(killed >= 1 for killed, _ in drops), drops
    assert any(killed >= 2 for killed, _ in drops), drops
    with Store(url) as store:
        rows = store.trials(study.id, limit=100)
        assert sorted(t.number for t in rows) == list(range(n)), [(t.number, t.state) for t in rows]
        assert all(t.state == "complete" for t in rows), [(t.number, t.state, t.reason) for t in rows]
        assert store.get_study(study.id).status == "done"
        ostudy = optuna.load_study(study_name="dropped", storage=store.optuna_storage)
        assert [t.state for t in ostudy.trials] == [TrialState.COMPLETE] * n  # Optuna agrees, nothing left running
