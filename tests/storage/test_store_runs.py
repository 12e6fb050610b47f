"""Confirmation runs in the store (``auxtune_runs``): idempotent planning, exactly-once claims under a lease,
requeue after a lost lease, refused late reports; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from storage import LeaseLost, RunPlan, Store
from tests.storage.store_factories import make_study

PLANS = [RunPlan("baseline", "baseline", {"lam": 0.0}, seed) for seed in (10, 11)] + [
    RunPlan("lambda", "best", {"lam": 0.7}, seed, trial_number=3) for seed in (10, 11)]


def finished_study(store: Store, name: str = "demo", status: str = "done") -> int:
    study = make_study(store, name=name)
    store.set_study_status(study.id, status)
    return study.id


def test_enqueue_is_idempotent_and_replans_a_changed_arm(store: Store) -> None:
    study_id = finished_study(store)
    runs = store.enqueue_runs(study_id, PLANS)
    assert [(r.arm, r.seed, r.state, r.attempt) for r in runs] == [
        ("baseline", 10, "queued", 0), ("baseline", 11, "queued", 0), ("best", 10, "queued", 0),
        ("best", 11, "queued", 0)]
    claim = store.claim_run("w1")
    assert claim is not None
    store.finish_run(claim, "complete", 0.6, 0.58, {"confusion": [[1, 0], [0, 1]]})
    again = store.enqueue_runs(study_id, PLANS)  # the same plan: nothing changes, the finished run stays
    assert [r.state for r in again] == ["complete", "queued", "queued", "queued"]
    assert again[0].result == {"confusion": [[1, 0], [0, 1]]} and again[0].test_value == 0.58
    moved = [RunPlan("lambda", "best", {"lam": 0.9}, seed, trial_number=5) for seed in (10, 11)]
    replanned = {(r.arm, r.seed): r for r in store.enqueue_runs(study_id, moved)}
    assert replanned[("best", 10)].params == {"lam": 0.9} and replanned[("best", 10)].trial_number == 5
    assert replanned[("baseline", 10)].state == "complete"  # other arms keep what they have
    assert store.run_counts(study_id) == {"queued": 3, "running": 0, "complete": 1, "failed": 0}


def test_only_finished_studies_hand_out_runs(store: Store) -> None:
    running = finished_study(store, "searching", status="running")
    store.enqueue_runs(running, PLANS[:1])
    assert store.claim_run("w1") is None  # the search is not over
    paused = finished_study(store, "paused", status="paused")
    store.enqueue_runs(paused, PLANS[:1])
    assert store.claim_run("w1") is None
    done = finished_study(store, "done")
    store.enqueue_runs(done, PLANS[:1])
    assert store.claim_run("w1", studies=["paused", "searching"]) is None
    claim = store.claim_run("w1", studies=["done"])
    assert claim is not None and claim.study_name == "done"
    assert [s.name for s in store.finished_studies_without_runs()] == []


def test_each_run_is_claimed_once_by_concurrent_workers(store: Store) -> None:
    study_id = finished_study(store)
    store.enqueue_runs(study_id, [RunPlan("baseline", "baseline", {"lam": 0.0}, s) for s in range(12)])
    got: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (claim := store.claim_run(name)) is not None:
            with lock:
                got.append(claim.run_id)
            store.finish_run(claim, "complete", 0.5, 0.5)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted({r.id for r in store.runs(study_id)})  # every run once, none twice
    assert store.run_counts(study_id)["complete"] == 12


def test_a_lost_lease_is_requeued_and_its_late_report_refused(store: Store) -> None:
    study_id = finished_study(store)
    store.enqueue_runs(study_id, PLANS[:1])
    dead = store.claim_run("dead", lease_timeout_s=0.2)
    assert dead is not None and dead.attempt == 1
    time.sleep(0.4)
    alive = store.claim_run("alive", lease_timeout_s=30, max_attempts=3)
    assert alive is not None and alive.run_id == dead.run_id and alive.attempt == 2
    assert not store.heartbeat_run(dead)
    with pytest.raises(LeaseLost):
        store.finish_run(dead, "complete", 0.9, 0.9)
    registered = store.register_worker("alive", "host", "cpu", 1).last_heartbeat_at
    time.sleep(0.01)
    assert store.heartbeat_run(alive)
    assert store.get_worker("alive").last_heartbeat_at > registered  # a worker busy with runs stays alive
    store.finish_run(alive, "complete", 0.6, 0.55, {"seed": alive.seed})
    (run,) = store.runs(study_id)
    assert (run.state, run.val_value, run.test_value, run.attempt, run.worker_id) == ("complete", 0.6, 0.55, 2,
                                                                                      "alive")
    assert "attempt 1 lost: the lease of worker dead expired" in run.reason  # kept: why attempt 2 was needed


def test_a_run_that_keeps_losing_its_lease_fails_and_release_gives_it_back(store: Store) -> None:
    study_id = finished_study(store)
    store.enqueue_runs(study_id, PLANS[:2])
    first = store.claim_run("w1")
    assert first is not None and store.release_run(first)  # shutdown: back to the queue, no attempt counted
    assert not store.release_run(first)
    for _ in range(2):
        claim = store.claim_run("w1", lease_timeout_s=0.1, studies=["demo"])
        assert claim is not None and claim.run_id == first.run_id
        time.sleep(0.25)
    store.claim_run("w2", max_attempts=2)  # expires the second lease: two attempts were the limit
    by_seed = {r.seed: r for r in store.runs(study_id)}
    assert by_seed[first.seed].state == "failed" and "gave up after 2" in by_seed[first.seed].reason
    with pytest.raises(ValueError, match="complete"):
        store.finish_run(first, "pruned")


def test_runs_go_with_their_study(store: Store) -> None:
    study_id = finished_study(store)
    store.enqueue_runs(study_id, PLANS)
    store.delete_study(study_id)
    other = finished_study(store, "other")
    assert store.runs(other) == [] and store.claim_run("w1") is None
