"""Saved models of finished trials (``auxtune_artifacts``), on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import os

import pytest

from storage import ArtifactNotFound, Store, StudyNotFound, TrialNotFound
from tests.storage.store_factories import CONTROLS, make_study

META = {"input_shape": [1, 8, 8], "n_classes": 10, "heads": {"main": 10}}


def test_save_info_load_and_replace(store: Store) -> None:
    study = make_study(store, enqueue=CONTROLS)
    blob = os.urandom(70_000)  # bytes of any value, beyond one page
    saved = store.save_artifact(study.id, 1, META, blob)
    assert (saved.study_name, saved.number, saved.size, saved.format) == ("demo", 1, len(blob), "torch.state_dict")
    info = store.artifact_info("demo", 1)
    assert info.meta == META and info.size == len(blob)
    record, loaded = store.load_artifact("demo", 1)
    assert loaded == blob and record.meta == META
    store.save_artifact(study.id, 1, {**META, "n_classes": 3}, b"new")  # the same trial again: replaced
    assert store.load_artifact("demo", 1)[1] == b"new"
    assert [a.number for a in store.artifacts(study.id)] == [1]


def test_the_best_keeps_one_saved_model_per_study(store: Store) -> None:
    study = make_study(store, enqueue=CONTROLS)
    other = make_study(store, enqueue=CONTROLS, name="other")
    store.save_artifact(study.id, 0, META, b"a")
    store.save_artifact(other.id, 0, META, b"o")
    store.save_best_artifact(study.id, 1, META, b"b")  # no complete trial yet: nothing better is saved
    assert [a.number for a in store.artifacts(study.id)] == [1]
    assert [a.number for a in store.artifacts(other.id)] == [0]  # another study's saved models are untouched


def test_missing_study_trial_or_model_each_say_what_to_do(store: Store) -> None:
    study = make_study(store, enqueue=CONTROLS)
    with pytest.raises(StudyNotFound):
        store.artifact_info("nope", 0)
    with pytest.raises(TrialNotFound, match="has no trial 7"):
        store.load_artifact("demo", 7)
    with pytest.raises(ArtifactNotFound, match="artifacts.save: all"):
        store.artifact_info("demo", 0)
    with pytest.raises(TrialNotFound):  # a model is saved for a trial of the study only
        store.save_artifact(study.id, 9, META, b"x")


def test_deleting_the_study_deletes_its_saved_models(store: Store) -> None:
    study = make_study(store, enqueue=CONTROLS)
    store.save_artifact(study.id, 0, META, b"a")
    store.set_study_status(study.id, "cancelled")
    store.delete_study(study.id)
    again = make_study(store, enqueue=CONTROLS)
    assert store.artifacts(again.id) == []
    with pytest.raises(ArtifactNotFound):
        store.artifact_info("demo", 0)


def test_best_only_keeps_the_best_trials_model_whatever_order_workers_save_in(store: Store) -> None:
    """Three workers finish trials 0 (0.5), 1 (0.7) and 2 (0.6) about at once; each checked it was the best when it
    finished, then saves. Every saving order must end with the best trial's model, alone."""
    study = make_study(store, enqueue=[{"helpful": 0.0}, {"helpful": 1.0}, {"helpful": 0.5}])
    claims = [store.claim_trial(study.id, f"w{i}", lambda trial: {}) for i in range(3)]
    for c, value in zip(claims, (0.5, 0.7, 0.6), strict=True):
        assert c is not None
        store.finish_trial(c, "complete", value)
    # trial 2 saves while the better trial 1's model is not there yet: kept for now
    assert store.save_best_artifact(study.id, 2, META, b"two") is not None
    assert [a.number for a in store.artifacts(study.id)] == [2]
    # the best's model arrives and drops the others
    assert store.save_best_artifact(study.id, 1, META, b"one") is not None
    assert [a.number for a in store.artifacts(study.id)] == [1]
    # trial 0 saves after the best's model is there: nothing is written
    assert store.save_best_artifact(study.id, 0, META, b"zero") is None
    assert [a.number for a in store.artifacts(study.id)] == [1]
    assert store.load_artifact("demo", 1)[1] == b"one"
