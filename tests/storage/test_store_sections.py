"""Critical sections on a real PostgreSQL under faults (issue #14, point 7) and under contention.

A section's advisory lock lives on its own server session: terminate that session and the lock is gone while
the store is still inside. The store must then roll back rather than commit inside a section another holds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import optuna
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage import RunPlan, SectionBusy, SectionLost, Store
from storage._pg_sections import PG_FENCE_NAMESPACE
from storage.locks import CATALOG_KEY, PG_LOCK_NAMESPACE
from tests.conftest import PG_ADMIN_URL
from tests.storage.store_factories import make_study

_HOLDERS = text(
    "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' "
    "AND l.granted AND l.classid::bigint = :ns AND l.objid::bigint = :key AND d.datname = :db")


def _waiting_at_fence(conn: Any, key: int) -> bool:
    return bool(conn.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid::bigint = :ns "
        "AND objid::bigint = :key"), {"ns": PG_FENCE_NAMESPACE, "key": key}).scalar())


def _admin() -> Any:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def test_a_section_whose_lock_connection_dropped_commits_nothing_once_another_store_is_inside(
        fresh_pg_database_url: str) -> None:
    db = make_url(fresh_pg_database_url).database
    first, second = Store(fresh_pg_database_url), Store(fresh_pg_database_url)
    admin = _admin()
    try:
        study = make_study(first, n_trials=3)
        inside, resume = threading.Event(), threading.Event()
        outcome: dict[str, Any] = {}

        def suggest(trial: optuna.trial.Trial) -> dict[str, float]:  # runs inside the study's section
            inside.set()
            assert resume.wait(30)
            return {"lam": trial.suggest_float("lam", 0.0, 2.0)}

        def claim() -> None:
            try:
                outcome["claim"] = first.claim_trial(study.id, "w1", suggest,
                                                     sampler=optuna.samplers.RandomSampler(seed=0))
            except Exception as e:  # noqa: BLE001 - the test inspects what the section did
                outcome["error"] = e

        claimer = threading.Thread(target=claim)
        claimer.start()
        assert inside.wait(30)
        with admin.connect() as conn:
            holders = conn.execute(_HOLDERS, {"ns": PG_LOCK_NAMESPACE, "key": study.id, "db": db}).scalars().all()
            assert len(holders) == 1
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holders[0]}).scalar()
        # The lock is free: a second store enters the study's section and works there.
        second.enqueue_runs(study.id, [RunPlan(kind="baseline", arm="baseline", params={}, seed=0)])
        resume.set()
        claimer.join(60)
        assert not claimer.is_alive()

        assert isinstance(outcome.get("error"), SectionLost), outcome
        assert "lost the lock of study" in str(outcome["error"])
        assert [t for t in second.trials(study.id) if t.state == "running"] == []  # the lease was not committed
        assert [r.arm for r in second.runs(study.id)] == ["baseline"]
        # The store goes on: its next claim takes a new lock connection and leases a trial.
        again = first.claim_trial(study.id, "w1", lambda t: {"lam": t.suggest_float("lam", 0.0, 2.0)},
                                  sampler=optuna.samplers.RandomSampler(seed=1))
        assert again is not None and again.worker_id == "w1"
    finally:
        first.close()
        second.close()
        admin.dispose()


def test_entering_a_section_waits_for_commits_that_checked_the_previous_holder(fresh_pg_database_url: str) -> None:
    """A transaction that verified the previous holder (it holds the section's fence, shared) commits before
    the next store is inside: entering waits for it to end."""
    other = create_engine(fresh_pg_database_url)  # not autocommit: the fence lasts until the transaction ends
    with Store(fresh_pg_database_url) as store:
        study = make_study(store)
        entered = threading.Event()

        def enter() -> None:
            store.enqueue_runs(study.id, [RunPlan(kind="baseline", arm="baseline", params={}, seed=0)])
            entered.set()

        with other.connect() as committing:
            with committing.begin():
                committing.execute(text("SELECT pg_advisory_xact_lock_shared(:ns, :key)"),
                                   {"ns": PG_FENCE_NAMESPACE, "key": study.id})
                enterer = threading.Thread(target=enter)
                enterer.start()
                deadline = time.monotonic() + 30
                while not entered.is_set() and not _waiting_at_fence(committing, study.id):
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
                assert not entered.is_set()  # held at the fence while that transaction is open
            enterer.join(30)  # the transaction ended: the fence opens
        assert entered.is_set()
        assert [r.arm for r in store.runs(study.id)] == ["baseline"]
    other.dispose()


def test_entering_a_section_held_elsewhere_gives_up_after_the_wait(fresh_pg_database_url: str) -> None:
    """Another process holds the catalog: two threads of this store (one waiting on the server, one queued
    behind it in the process) both get ``SectionBusy`` after the wait, not a hang; then creation works."""
    wait_s = 0.5
    other = create_engine(fresh_pg_database_url, isolation_level="AUTOCOMMIT")  # advisory locks are per database
    with Store(fresh_pg_database_url, section_wait_s=wait_s) as store:
        errors: list[BaseException] = []

        def create(name: str) -> None:
            try:
                make_study(store, name=name)
            except SectionBusy as e:
                errors.append(e)

        with other.connect() as other_process:
            other_process.execute(text("SELECT pg_advisory_lock(:ns, :key)"), {"ns": PG_LOCK_NAMESPACE,
                                                                                "key": CATALOG_KEY})
            started = time.monotonic()
            threads = [threading.Thread(target=create, args=(f"s{i}",)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            took = time.monotonic() - started
            other_process.execute(text("SELECT pg_advisory_unlock_all()"))
        assert len(errors) == 2 and wait_s <= took < wait_s + 5, (errors, took)
        assert all("study catalog" in str(e) and "retry" in str(e) for e in errors)
        assert store.list_studies() == []
        assert make_study(store, name="after").name == "after"
    other.dispose()


def test_more_threads_than_pooled_connections_take_turns_in_a_section(fresh_pg_database_url: str) -> None:
    """More threads than the work pool has connections (5 + 10 overflow) create studies at once: waiting for
    the catalog holds none of them, so each study is created once and none fails."""
    threads = 20
    with Store(fresh_pg_database_url) as store:
        failures: list[BaseException] = []

        def create(name: str) -> None:
            try:
                make_study(store, name=name)
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                failures.append(e)

        workers = [threading.Thread(target=create, args=(f"t{i}",)) for i in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        assert failures == []
        assert sorted(s.name for s in store.list_studies()) == sorted(f"t{i}" for i in range(threads))
