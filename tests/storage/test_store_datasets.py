"""Uploaded data sets in the store (``auxtune_datasets``, blobs chunked by sha256), on real SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import os

import pytest

from storage import CHUNK_BYTES, DatasetDeletion, DatasetNotFound, Store
from tuner.spec.dataset_refs import names_dataset


def test_a_dataset_is_saved_in_chunks_and_read_back_by_its_digest(store: Store) -> None:
    blob = os.urandom(2 * CHUNK_BYTES + 123)  # three chunks, the last one short
    sha = hashlib.sha256(blob).hexdigest()
    saved = store.save_dataset("a" * 32, io.BytesIO(blob), sha, owner="alice", filename="pets.zip", fmt="folder",
                               meta={"images": 3, "tables": ["attributes.csv"]})
    assert (saved.sha256, saved.size, saved.owner, saved.format) == (sha, len(blob), "alice", "folder")
    assert store.dataset("a" * 32) == saved and saved.meta == {"images": 3, "tables": ["attributes.csv"]}
    assert store.blob_chunks(sha) == 3
    assert b"".join(store.blob_chunk(sha, i) for i in range(3)) == blob

    again = store.save_dataset("b" * 32, io.BytesIO(blob), sha, owner=None, filename="same.zip", fmt="folder", meta={})
    assert again.sha256 == sha and store.blob_chunks(sha) == 3  # identical bytes: one blob, two datasets


def test_bytes_that_do_not_match_their_digest_store_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="hash to"):
        store.save_dataset("c" * 32, io.BytesIO(b"abc"), "0" * 64, owner=None, filename="x.csv", fmt="csv", meta={})
    with pytest.raises(DatasetNotFound):
        store.dataset("c" * 32)
    with pytest.raises(DatasetNotFound):
        store.blob_chunks("0" * 64)
    with pytest.raises(DatasetNotFound, match="no chunk 5"):
        sha = hashlib.sha256(b"x").hexdigest()
        store.save_dataset("d" * 32, io.BytesIO(b"x"), sha, owner=None, filename="x.csv", fmt="csv", meta={})
        store.blob_chunk(sha, 5)


def delete(store: Store, dataset_id: str) -> DatasetDeletion:
    """``Store.delete_dataset`` with the reference syntax the API gives it."""
    return store.delete_dataset(dataset_id, lambda spec: names_dataset(spec, dataset_id))


def test_a_dataset_is_deleted_with_its_bytes_only_once_nothing_names_it(store: Store) -> None:
    blob = os.urandom(CHUNK_BYTES + 7)
    sha = hashlib.sha256(blob).hexdigest()
    for dataset_id in ("e" * 32, "f" * 32):  # the same bytes uploaded twice: one blob
        store.save_dataset(dataset_id, io.BytesIO(blob), sha, owner="alice", filename="p.zip", fmt="folder", meta={})
    doc = {"name": "uses-e", "workload": {"name": "images", "params": {"root": f"dataset:{'e' * 32}/images"}}}
    study = store.create_or_resume_study("uses-e", doc, ["maximize"], 2, owner="bob")
    unrelated = {"name": "other", "workload": {"name": "images", "params": {"root": f"dataset:{'e' * 31}0/x"}}}
    store.create_or_resume_study("other", unrelated, ["maximize"], 2)

    kept = delete(store, "e" * 32)  # a study names it: nothing is deleted
    assert kept.users == [("uses-e", "bob")] and store.dataset("e" * 32).sha256 == sha
    gone = delete(store, "f" * 32)  # its twin goes, the shared bytes stay for "e"
    assert gone.users == [] and not gone.bytes_freed and store.blob_chunks(sha) == 2
    with pytest.raises(DatasetNotFound):
        store.dataset("f" * 32)

    store.delete_study(study.id)
    last = delete(store, "e" * 32)
    assert last.users == [] and last.bytes_freed
    with pytest.raises(DatasetNotFound):
        store.blob_chunks(sha)
    with pytest.raises(DatasetNotFound):
        store.blob_chunk(sha, 0)  # the chunks went with the blob
    with pytest.raises(DatasetNotFound):
        delete(store, "e" * 32)
