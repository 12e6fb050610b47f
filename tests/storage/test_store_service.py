"""The store's additions for the REST service: tokens, studies per owner, guarded status changes, counts."""

from __future__ import annotations

from sqlalchemy import text

from storage import Store
from tests.storage.store_factories import make_study, suggest_lambda


def test_tokens_are_found_by_their_text_and_stored_only_as_a_hash(store: Store) -> None:
    record, token = store.create_token("alice")
    assert token.startswith("axt_") and store.authenticate(token) == record
    assert record.owner == "alice" and not record.is_admin
    assert store.authenticate(token + "x") is None
    with store._engine.connect() as conn:
        assert token not in {row[0] for row in conn.exec_driver_sql("SELECT token_hash FROM auxtune_tokens")}


def test_the_first_admin_token_is_made_once_or_taken_from_the_operator(store: Store) -> None:
    first = store.ensure_admin_token()
    assert first is not None and store.authenticate(first).is_admin  # type: ignore[union-attr]
    assert store.ensure_admin_token() is None
    assert store.ensure_admin_token("axt_operator") is None
    assert store.authenticate("axt_operator").is_admin  # type: ignore[union-attr]
    assert store.ensure_admin_token("axt_operator") is None  # known already: nothing added


def test_studies_of_an_owner_are_paged_and_counted(store: Store) -> None:
    for i, owner in enumerate(["a", "b", "a", None, "a"]):
        s = make_study(store, name=f"s{i}")
        with store.session() as session:  # make_study has no owner parameter
            session.execute(text("UPDATE auxtune_studies SET owner = :o WHERE id = :i"), {"o": owner, "i": s.id})
    page, count = store.studies_of("a", limit=2)
    assert count == 3 and [s.name for s in page] == ["s4", "s2"]
    assert store.studies_of(None)[1] == 1
    assert store.studies_of("x", every_owner=True)[1] == 5
    assert store.studies_of("a", status="paused") == ([], 0)


def test_a_status_changes_only_from_the_allowed_ones(store: Store) -> None:
    study = make_study(store)
    assert store.transition_study(study.id, "paused", ["running"]) is None
    assert store.get_study(study.id).status == "queued"
    changed = store.transition_study(study.id, "paused", ["queued", "running"])
    assert changed is not None and changed.status == "paused"


def test_counts_queue_depth_and_sanity_of_a_page(store: Store) -> None:
    study = make_study(store, n_trials=5, enqueue=[{"lam": 0.0}, {"lam": 1.0}])
    other = make_study(store, n_trials=3, name="other")
    store.transition_study(other.id, "cancelled", ["queued"])
    claim = store.claim_trial(study.id, "w", suggest_lambda)
    assert claim is not None
    store.record_sanity(claim, {"passed": True, "reason": "", "loss_drop": 0.9})
    store.finish_trial(claim, "complete", 0.5)
    assert store.trial_counts()["complete"] == 1 and store.trial_counts()["queued"] == 1
    assert store.study_counts()["cancelled"] == 1 and store.study_counts()["running"] == 1
    assert store.queue_depth() == 4  # 5 budgeted − 1 finished; the cancelled study's budget does not count
    sanity = store.sanity_of_trials(study.id, [0, 1, 7])
    assert list(sanity) == [0] and sanity[0].passed and sanity[0].figures == {"loss_drop": 0.9}
