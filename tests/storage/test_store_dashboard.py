"""The dashboard's whole-study reads (``storage._dashboard_queries``), on SQLite and PostgreSQL, after real claims."""

from __future__ import annotations

import time

from storage import Store
from tests.storage.store_factories import make_study, suggest_lambda


def test_version_changes_with_every_visible_change_and_only_then(store: Store) -> None:
    study = make_study(store, n_trials=4, enqueue=[{"lam": 0.0}])
    seen = [store.dashboard_version(study.id)]
    assert store.dashboard_version(study.id) == seen[-1]  # nothing changed: same token
    claim = store.claim_trial(study.id, "w", suggest_lambda)
    assert claim is not None
    seen.append(store.dashboard_version(study.id))
    store.record_sanity(claim, {"passed": True, "reason": ""})
    seen.append(store.dashboard_version(study.id))
    store.heartbeat(claim)
    store.record_epoch(claim, 0, {"val_accuracy": 0.5})
    assert store.dashboard_version(study.id) == seen[-1]  # heartbeats and epochs: not part of it
    store.finish_trial(claim, "complete", 0.5)
    seen.append(store.dashboard_version(study.id))
    store.transition_study(study.id, "paused", ["running"])
    seen.append(store.dashboard_version(study.id))
    assert len(set(seen)) == len(seen) and all(v.isalnum() for v in seen)


def test_points_curves_and_sanity_are_of_the_current_attempt(store: Store) -> None:
    study = make_study(store, n_trials=3)
    first = store.claim_trial(study.id, "w1", suggest_lambda, lease_timeout_s=0.2)
    assert first is not None
    store.record_sanity(first, {"passed": False, "reason": "loss fell by 12%", "failed_checks": ["loss_not_dropping"]})
    store.record_epoch(first, 0, {"val_accuracy": 0.1})
    time.sleep(0.4)  # the lease expires: the next claim requeues trial 0 as attempt 2 and hands it out again
    again = store.claim_trial(study.id, "w2", suggest_lambda)
    assert again is not None and (again.number, again.attempt) == (0, 2)
    store.record_sanity(again, {"passed": True, "reason": ""})
    store.record_epochs(again, [(0, {"val_accuracy": 0.4}), (1, {"val_accuracy": 0.6})])
    store.finish_trial(again, "complete", 0.6)
    other = store.claim_trial(study.id, "w1", suggest_lambda)
    assert other is not None
    store.record_sanity(other, {"passed": False, "reason": "non-finite loss", "failed_checks": ["non_finite"]})
    store.finish_trial(other, "failed_sanity", reason="sanity gate: non-finite loss")

    points = store.trial_points(study.id)
    assert [(p.number, p.state, p.attempt, p.worker_id) for p in points] == [
        (0, "complete", 2, "w2"), (1, "failed_sanity", 1, "w1")]
    assert points[0].value == 0.6 and points[0].params == again.params and points[0].seconds is not None
    assert points[1].reason == "sanity gate: non-finite loss"
    curves = store.epochs_of_trials(study.id, [0, 1, 9])
    assert [e.metrics["val_accuracy"] for e in curves[0]] == [0.4, 0.6] and curves[1] == [] and 9 not in curves
    summary = store.sanity_summary(study.id)
    assert (summary.passed, summary.failed) == (1, 1)  # attempt 1's failure of trial 0 no longer counts
    assert [(f.number, f.checks) for f in summary.failures] == [(1, ("non_finite",))]


def test_counts_of_a_page_of_studies_in_one_go(store: Store) -> None:
    a, b = make_study(store, n_trials=3, enqueue=[{"lam": 0.0}, {"lam": 1.0}]), make_study(store, name="b")
    claim = store.claim_trial(a.id, "w", suggest_lambda)
    assert claim is not None
    store.finish_trial(claim, "complete", 0.1)
    counts = store.counts_of_studies([a.id, b.id])
    assert counts[a.id]["complete"] == 1 and counts[a.id]["queued"] == 1 and counts[a.id]["running"] == 0
    assert sum(counts[b.id].values()) == 0 and store.counts_of_studies([]) == {}
