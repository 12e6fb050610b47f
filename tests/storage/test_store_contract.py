"""The store contract: every test here runs on a real SQLite file and on a real PostgreSQL database."""

from __future__ import annotations

import dataclasses
import time

import optuna
import pytest
from optuna.trial import TrialState

from storage import LeaseLost, ParetoSize, Store, StudyConflict, StudyNotFound, TrialNotFound
from storage._ledger import _created_trial, new_optuna_trial
from tests.storage.store_factories import CONTROLS, SPEC, make_study, objective, suggest_lambda

EXPIRE_S = 0.2  # lease the expiry tests take
AFTER_EXPIRY_S = 0.35


def claim(store: Store, study_id: int, worker: str = "w1", **kwargs):  # type: ignore[no-untyped-def]
    kwargs.setdefault("sampler", optuna.samplers.RandomSampler(seed=1))
    return store.claim_trial(study_id, worker, suggest_lambda, **kwargs)


def optuna_trials(store: Store, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=store.url).get_trials(deepcopy=False)


# -- studies ---------------------------------------------------------------------------------------------------
def test_create_get_list(store: Store) -> None:
    study = make_study(store, n_trials=7)
    assert (study.name, study.status, study.n_trials, study.direction) == ("demo", "queued", 7, "maximize")
    assert store.get_study(study.id) == store.get_study("demo") == study
    assert [s.id for s in store.list_studies()] == [study.id]
    assert store.list_studies(status="done") == [] and store.count_studies() == 1
    with pytest.raises(StudyNotFound):
        store.get_study("nope")
    with pytest.raises(StudyNotFound):
        store.get_study(999)


def test_resume_with_same_spec_returns_the_study_and_enqueues_nothing_more(store: Store) -> None:
    first = make_study(store, enqueue=CONTROLS)
    again = make_study(store, enqueue=CONTROLS)
    assert again.id == first.id
    assert [t.number for t in store.trials(first.id)] == [0, 1]


def test_different_spec_conflicts_and_says_how_to_resume_or_rename(store: Store) -> None:
    make_study(store, n_trials=5)
    with pytest.raises(StudyConflict) as err:
        make_study(store, n_trials=6)
    message = str(err.value)
    assert "search.n_trials" in message and "resume" in message and "new name" in message
    assert "\n" not in message


def test_status_changes_gate_claims(store: Store) -> None:
    study = make_study(store)
    store.set_study_status(study.id, "paused")
    assert claim(store, study.id) is None
    store.set_study_status(study.id, "running")
    assert claim(store, study.id) is not None
    with pytest.raises(ValueError):
        store.set_study_status(study.id, "sleeping")


def test_delete_study_removes_ours_and_optunas(store: Store) -> None:
    study = make_study(store, enqueue=CONTROLS)
    store.delete_study(study.id)
    assert store.count_studies() == 0
    assert optuna.get_all_study_names(store.url) == []


# -- claiming --------------------------------------------------------------------------------------------------
def test_enqueued_trials_are_claimed_first_in_order(store: Store) -> None:
    study = make_study(store, n_trials=4, enqueue=CONTROLS)
    claims = [claim(store, study.id) for _ in range(3)]
    assert [c.number for c in claims if c] == [0, 1, 2]
    assert [c.params for c in claims[:2] if c] == CONTROLS
    assert store.get_study(study.id).status == "running"
    # Optuna recorded the controls' λ with their distribution, so samplers learn from them.
    assert [t.params for t in optuna_trials(store, "demo")[:2]] == CONTROLS


def test_claiming_stops_at_n_trials_and_the_study_is_done(store: Store) -> None:
    study = make_study(store, n_trials=3)
    claims = [claim(store, study.id) for _ in range(3)]
    assert claim(store, study.id) is None
    for c in claims:
        assert c is not None
        store.finish_trial(c, "complete", objective(c.params))
    assert claim(store, study.id) is None
    assert store.get_study(study.id).status == "done"
    assert store.counts_by_state(study.id)["complete"] == 3
    assert [t.state for t in optuna_trials(store, "demo")] == [TrialState.COMPLETE] * 3


def test_max_parallel(store: Store) -> None:
    study = make_study(store, n_trials=5)
    first = claim(store, study.id, max_parallel=1)
    assert first is not None and claim(store, study.id, max_parallel=1) is None
    store.finish_trial(first, "complete", 0.5)
    assert claim(store, study.id, max_parallel=1) is not None


def test_without_suggest_only_queued_trials_are_handed_out(store: Store) -> None:
    study = make_study(store, n_trials=5, enqueue=[{"lam": 0.5}])
    got = store.claim_trial(study.id, "w1")
    assert got is not None and got.params == {"lam": 0.5}
    assert store.claim_trial(study.id, "w1") is None


def test_heartbeat_true_while_leased_false_after(store: Store) -> None:
    study = make_study(store)
    c = claim(store, study.id)
    assert c is not None and store.heartbeat(c)
    store.finish_trial(c, "complete", 0.1)
    assert not store.heartbeat(c)


def test_expired_lease_is_requeued_with_same_number_and_a_late_report_is_refused(store: Store) -> None:
    study = make_study(store, n_trials=1)
    old = claim(store, study.id, "w1", lease_timeout_s=EXPIRE_S)
    assert old is not None
    store.record_epoch(old, 0, {"val_accuracy": 0.1})
    time.sleep(AFTER_EXPIRY_S)
    new = claim(store, study.id, "w2")
    assert new is not None
    assert (new.number, new.params, new.attempt, new.worker_id) == (old.number, old.params, 2, "w2")
    assert not store.heartbeat(old)
    with pytest.raises(LeaseLost):
        store.finish_trial(old, "complete", 0.9)
    with pytest.raises(LeaseLost):
        store.record_epoch(old, 1, {"val_accuracy": 0.2})
    store.finish_trial(new, "complete", 0.5)
    [trial] = store.trials(study.id)
    assert (trial.state, trial.value, trial.attempt, trial.worker_id) == ("complete", 0.5, 2, "w2")
    assert "attempt 1 lost" in trial.reason and "w1" in trial.reason  # why it took two attempts
    [frozen] = optuna_trials(store, "demo")
    assert (frozen.state, frozen.value, frozen.params) == (TrialState.COMPLETE, 0.5, old.params)
    assert store.epochs(study.id, 0, attempt=1)[0].metrics == {"val_accuracy": 0.1}


def test_each_holder_sets_its_own_lease_and_heartbeats_renew_it(store: Store) -> None:
    study = make_study(store, n_trials=2)
    long = claim(store, study.id, "w1", lease_timeout_s=60)
    short = claim(store, study.id, "w2", lease_timeout_s=0.6)
    assert long is not None and short is not None
    for _ in range(3):
        time.sleep(AFTER_EXPIRY_S)
        assert store.heartbeat(short)  # renewed in time: never expires
    # A claimer with a short timeout does not take a trial whose holder asked for a long lease.
    assert claim(store, study.id, "w3", lease_timeout_s=EXPIRE_S) is None
    assert store.heartbeat(long) and store.heartbeat(short)


def test_max_attempts_then_failed_with_reason(store: Store) -> None:
    study = make_study(store, n_trials=1)
    assert claim(store, study.id, "w1", lease_timeout_s=EXPIRE_S, max_attempts=2) is not None
    time.sleep(AFTER_EXPIRY_S)
    second = claim(store, study.id, "w2", lease_timeout_s=EXPIRE_S, max_attempts=2)
    assert second is not None and second.attempt == 2
    time.sleep(AFTER_EXPIRY_S)
    assert claim(store, study.id, "w3", max_attempts=2) is None
    [trial] = store.trials(study.id)
    assert trial.state == "failed" and "gave up after 2 attempt(s)" in trial.reason and "w2" in trial.reason
    [frozen] = optuna_trials(store, "demo")
    assert frozen.state == TrialState.FAIL and "gave up" in frozen.user_attrs["auxtune_reason"]
    assert store.get_study(study.id).status == "done"


def test_failed_sanity_is_stored_with_reason_and_never_retried(store: Store) -> None:
    study = make_study(store, n_trials=1)
    c = claim(store, study.id)
    assert c is not None
    store.record_sanity(c, {"passed": False, "reason": "loss did not fall", "loss_drop": 0.01})
    store.finish_trial(c, "failed_sanity", None, {"sanity": "failed"}, reason="loss did not fall")
    time.sleep(AFTER_EXPIRY_S)
    assert claim(store, study.id, lease_timeout_s=EXPIRE_S) is None
    [trial] = store.trials(study.id)
    assert (trial.state, trial.reason, trial.attempt) == ("failed_sanity", "loss did not fall", 1)
    sanity = store.sanity(study.id, 0)
    assert sanity is not None and not sanity.passed and sanity.figures == {"loss_drop": 0.01}
    [frozen] = optuna_trials(store, "demo")
    assert frozen.state == TrialState.FAIL and frozen.user_attrs["auxtune_state"] == "failed_sanity"


def test_release_requeues_without_counting_an_attempt(store: Store) -> None:
    study = make_study(store, n_trials=1)
    c = claim(store, study.id)
    assert c is not None
    store.record_epoch(c, 0, {"val_accuracy": 0.3})
    assert store.release_trial(c) and not store.release_trial(c)
    assert store.get_trial(study.id, 0).state == "queued"
    again = claim(store, study.id, "w2")
    assert again is not None and (again.number, again.attempt, again.params) == (0, 1, c.params)
    assert store.epochs(study.id, 0) == []  # what the released attempt wrote is gone


def test_epochs_report_and_pruning(store: Store) -> None:
    study = make_study(store, n_trials=2)
    pruner = optuna.pruners.ThresholdPruner(lower=0.5)
    c = claim(store, study.id, pruner=pruner)
    assert c is not None
    for epoch, acc in enumerate([0.6, 0.4]):
        store.record_epoch(c, epoch, {"train_loss": {"main": 1.0, "helpful": float("nan")}, "val_accuracy": acc})
        prune = store.report(c, epoch, acc)
    assert prune
    store.finish_trial(c, "pruned", 0.4, {"best_epoch": 0})
    records = store.epochs(study.id, 0)
    assert [(e.epoch, e.metrics["val_accuracy"]) for e in records] == [(0, 0.6), (1, 0.4)]
    assert records[0].metrics["train_loss"] == {"main": 1.0, "helpful": None}  # NaN is stored as null
    [frozen] = optuna_trials(store, "demo")
    assert frozen.state == TrialState.PRUNED and frozen.intermediate_values == {0: 0.6, 1: 0.4}
    assert frozen.value == 0.4  # as Study.tell does: a pruned trial takes its last intermediate value


class _RecordingSampler(optuna.samplers.RandomSampler):
    """A real sampler that also notes what its ``after_trial`` hook was told."""

    def __init__(self) -> None:
        super().__init__(seed=3)
        self.told: list[tuple[int, TrialState, list[float] | None, dict]] = []

    def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
        self.told.append((trial.number, state, values, dict(trial.params)))
        super().after_trial(study, trial, state, values)


def test_the_samplers_after_trial_hook_sees_every_finish_as_with_study_tell(store: Store) -> None:
    study = make_study(store, n_trials=3)
    sampler = _RecordingSampler()
    outcomes = [("complete", 0.5), ("pruned", None), ("failed", None)]
    for state, value in outcomes:
        c = claim(store, study.id, sampler=sampler)
        assert c is not None
        store.report(c, 0, 0.125)
        store.finish_trial(c, state, value)
    got = [(n, s, v) for n, s, v, _ in sampler.told]
    assert got == [(0, TrialState.COMPLETE, [0.5]), (1, TrialState.PRUNED, [0.125]), (2, TrialState.FAIL, None)]
    assert all(set(params) == {"lam"} for *_, params in sampler.told)
    frozen = optuna_trials(store, "demo")
    assert [(t.state, t.value) for t in frozen] == [(TrialState.COMPLETE, 0.5), (TrialState.PRUNED, 0.125),
                                                   (TrialState.FAIL, None)]


def test_a_trial_enqueued_with_optuna_directly_is_adopted_and_handed_out(store: Store) -> None:
    study = make_study(store, n_trials=3)
    first = claim(store, study.id)
    assert first is not None
    optuna.load_study(study_name="demo", storage=store.url).enqueue_trial({"lam": 1.75})  # unknown to our ledger
    got = [c for c in (claim(store, study.id), claim(store, study.id), claim(store, study.id)) if c]
    assert sorted(c.number for c in got) == [1, 2]
    assert {"lam": 1.75} in [c.params for c in got]
    assert sorted(t.number for t in store.trials(study.id)) == [0, 1, 2]


def test_a_new_trial_is_the_trial_optuna_itself_would_build(store: Store) -> None:
    """``new_optuna_trial`` builds the ``Trial`` from what ``create_new_trial`` cached instead of reading it back:
    it must be the very object Optuna's own ``Trial(study, id)`` builds (this fails if an Optuna upgrade changes
    ``Trial.__init__`` or stops caching new trials)."""
    study = make_study(store, n_trials=5)
    ostudy = store.optuna_study(store.get_study(study.id), optuna.samplers.RandomSampler(seed=3))
    trial = new_optuna_trial(ostudy)
    assert _created_trial(ostudy._storage, trial._trial_id) is not None  # the fast path was taken
    reference = optuna.trial.Trial(ostudy, trial._trial_id)
    assert vars(trial).keys() == vars(reference).keys()
    assert trial._cached_frozen_trial == reference._cached_frozen_trial
    assert trial._cached_frozen_trial is not reference._cached_frozen_trial
    assert (trial._fixed_params, trial._relative_params, trial.relative_search_space) == (
        reference._fixed_params, reference._relative_params, reference.relative_search_space)
    assert trial.study is ostudy and trial.storage is reference.storage
    # and it works as one: suggest, then finish through the store's path
    lam = trial.suggest_float("lam", 0.0, 2.0)
    assert optuna_trials(store, "demo")[trial.number].params == {"lam": lam}


def test_a_claim_rebuilt_without_its_live_trial_still_reports_and_finishes(store: Store) -> None:
    study = make_study(store, n_trials=1)
    live = claim(store, study.id)
    assert live is not None
    rebuilt = dataclasses.replace(live, trial=None)  # e.g. a claim that travelled through the API
    assert store.report(rebuilt, 0, 0.3) is False
    store.finish_trial(rebuilt, "complete", 0.3)
    [frozen] = optuna_trials(store, "demo")
    assert (frozen.state, frozen.value, frozen.intermediate_values) == (TrialState.COMPLETE, 0.3, {0: 0.3})


def test_listing_trials_by_state(store: Store) -> None:
    study = make_study(store, n_trials=3)
    first, second = claim(store, study.id), claim(store, study.id)
    assert first is not None and second is not None
    store.finish_trial(first, "failed", None, reason="boom")
    assert [t.number for t in store.trials(study.id, states=["running"])] == [second.number]
    assert store.counts_by_state(study.id) == {"queued": 0, "running": 1, "complete": 0, "pruned": 0, "failed": 1,
                                               "failed_sanity": 0}
    with pytest.raises(ValueError):
        store.trials(study.id, states=["lost"])


@pytest.mark.parametrize("direction, best_lam", [("maximize", 0.7), ("minimize", 1.9)])
def test_best_trial_respects_direction(store: Store, direction: str, best_lam: float) -> None:
    lams = [{"lam": x} for x in (0.0, 0.7, 1.9)]
    study = make_study(store, n_trials=3, enqueue=lams, direction=direction)
    assert store.best_trial(study.id) is None
    while (c := claim(store, study.id)) is not None:
        store.finish_trial(c, "complete", objective(c.params))
    best = store.best_trial(study.id)
    assert best is not None and best.params == {"lam": best_lam} and best.direction == direction


def test_finish_validates_its_arguments(store: Store) -> None:
    study = make_study(store)
    c = claim(store, study.id)
    assert c is not None
    with pytest.raises(ValueError, match="finite value"):
        store.finish_trial(c, "complete", float("nan"))
    with pytest.raises(ValueError, match="state must be"):
        store.finish_trial(c, "success", 1.0)
    store.finish_trial(c, "failed", None, reason="CUDA out of memory")
    assert store.get_trial(study.id, c.number).reason == "CUDA out of memory"
    with pytest.raises(TrialNotFound):
        store.get_trial(study.id, 99)


def test_workers_show_the_trial_they_hold(store: Store) -> None:
    study = make_study(store)
    store.register_worker("w1", "host-a", "cuda:0", 1234)
    c = claim(store, study.id, "w1")
    assert c is not None
    [w] = store.workers()
    assert (w.id, w.device, w.current_study_id, w.current_trial_number) == ("w1", "cuda:0", study.id, c.number)
    assert store.worker_heartbeat("w1") and not store.worker_heartbeat("ghost")
    store.finish_trial(c, "complete", 0.3)
    assert store.get_worker("w1").current_trial_number is None


def die_after_ask(store: Store) -> optuna.trial.Trial:
    """What a claimer leaves behind if it dies between Optuna's ask() and recording the lease."""
    orphan = optuna.load_study(study_name="demo", storage=store.optuna_storage).ask()
    orphan.suggest_float("lam", 0.0, 2.0)
    return orphan


def test_a_claimer_that_died_after_ask_leaves_nothing_lost(store: Store) -> None:
    study = make_study(store, n_trials=4)
    orphan = die_after_ask(store)
    got = claim(store, study.id)  # this process's first claim of the study repairs the ledger
    assert got is not None and got.number == orphan.number == 0 and got.params == orphan.params
    late_orphan = die_after_ask(store)  # now Optuna's next number (2) tells the next claimer
    assert [c.number for c in [claim(store, study.id), claim(store, study.id)] if c] == [2, late_orphan.number]
    assert [t.number for t in store.trials(study.id)] == [0, 1, 2]


def test_a_result_that_never_reached_optuna_is_told_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    study = make_study(store, n_trials=1)
    c = claim(store, study.id)
    assert c is not None
    import storage._leases

    with monkeypatch.context() as m:  # the worker dies between our commit and telling Optuna
        m.setattr(storage._leases, "tell_optuna", lambda *a, **k: None)
        store.finish_trial(c, "complete", 0.25)
    assert optuna_trials(store, "demo")[0].state == TrialState.RUNNING
    assert store.get_study(study.id).status == "done"
    time.sleep(AFTER_EXPIRY_S)
    restarted = Store(store.url)  # the next process to claim from the study repairs it, done or not
    try:
        assert claim(restarted, study.id, lease_timeout_s=EXPIRE_S) is None
    finally:
        restarted.close()
    first = optuna_trials(store, "demo")[0]
    assert (first.state, first.value) == (TrialState.COMPLETE, 0.25)


def test_optuna_sees_the_ledger(store: Store) -> None:
    """Optuna (and so optuna-dashboard) opens our database as an ordinary Optuna storage."""
    study = make_study(store, n_trials=3, enqueue=CONTROLS)
    while (c := claim(store, study.id)) is not None:
        store.finish_trial(c, "complete", objective(c.params))
    loaded = optuna.load_study(study_name="demo", storage=store.url)
    assert [t.number for t in loaded.trials] == [0, 1, 2]
    best = store.best_trial(study.id)
    assert best is not None and (loaded.best_trial.number, loaded.best_trial.params) == (best.number, best.params)
    assert SPEC["workload"] == store.get_study(study.id).spec["workload"]


# -- multi-objective studies -----------------------------------------------------------------------------------
def test_pareto_sizes_count_the_front_of_each_multi_objective_study(store: Store) -> None:
    """``pareto_sizes`` reads Optuna's value tables itself: it must count what ``pareto_front`` lists."""
    spec = {**SPEC, "search": {**SPEC["search"], "n_trials": 9}}
    two = store.create_or_resume_study("two", {**spec, "name": "two"}, ["maximize", "minimize"], 9)
    three = store.create_or_resume_study("three", {**spec, "name": "three"}, ["maximize", "minimize", "minimize"], 3)
    single = make_study(store, n_trials=2)
    assert store.pareto_sizes([two.id, three.id, single.id]) == {
        two.id: ParetoSize(count=0, complete=0), three.id: ParetoSize(count=0, complete=0)}
    # (↑, ↓): 0, 1 and 3 trade off; 2 is dominated by 1; 4 ties 3 on one objective and loses on the other;
    # 5 equals 0 (equal vectors both stay); a pruned and a failed trial have no values.
    for values in ([0.9, 0.5], [0.8, 0.2], [0.7, 0.3], [0.95, 0.9], [0.95, 0.95], [0.9, 0.5], None, None):
        c = claim(store, two.id)
        assert c is not None
        if values is None:
            store.finish_trial(c, "pruned" if c.number == 6 else "failed", None, reason="no values")
        else:
            store.finish_trial(c, "complete", values)
    running = claim(store, two.id)  # a trial still running is no part of it
    for values in ([1.0, 2.0, 3.0], [1.0, 1.0, 4.0], [0.5, 3.0, 5.0]):  # 2 is dominated by 0
        c = claim(store, three.id)
        assert c is not None
        store.finish_trial(c, "complete", values)
    c = claim(store, single.id)
    assert c is not None and running is not None
    store.finish_trial(c, "complete", 0.5)

    sizes = store.pareto_sizes([two.id, three.id, single.id, 999])
    assert set(sizes) == {two.id, three.id}  # a single-objective study has no front to count, 999 no study
    for study in (two, three):
        front = store.pareto_front(study.id)
        assert sizes[study.id] == ParetoSize(count=len(front), complete=len(store.objective_values(study.id)))
    assert sizes[two.id] == ParetoSize(count=4, complete=6) and sizes[three.id] == ParetoSize(count=2, complete=3)
    assert store.pareto_sizes([]) == {} and store.pareto_sizes([single.id]) == {}

    # An infinite value (Optuna stores it as a type, the value NULL), told through Optuna itself: it dominates 3.
    ostudy = optuna.load_study(study_name="two", storage=store.url, sampler=optuna.samplers.RandomSampler(seed=0))
    ostudy.tell(ostudy.ask(), [float("inf"), 0.6])
    assert len(store.pareto_front(two.id)) == 4 and store.pareto_sizes([two.id]) == {
        two.id: ParetoSize(count=4, complete=7)}


def test_a_worker_seen_to_exit_has_its_leases_ended_at_once(store: Store) -> None:
    study = make_study(store, n_trials=3)
    gone, kept = claim(store, study.id, "w1", lease_timeout_s=600), claim(store, study.id, "w2", lease_timeout_s=600)
    assert gone is not None and kept is not None
    assert store.expire_worker_leases("w1") == 1 and store.expire_worker_leases("nobody") == 0
    again = claim(store, study.id, "w3", lease_timeout_s=600)  # requeued now, not 600 s later
    assert again is not None and (again.number, again.attempt) == (gone.number, 2)
    assert not store.heartbeat(gone) and store.heartbeat(kept)
