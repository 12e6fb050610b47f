"""``DatasetCache``: a worker's copy of an uploaded data set, fetched from a real store by sha256 and verified."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import update

from storage import DatasetNotFound, Store
from storage.models import BlobChunkModel
from tests.api.bomb_factories import png_bytes
from tuner.execution.datasets import DatasetCache


def _save_zip(store: Store, dataset_id: str) -> str:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("pets/cat/1.png", png_bytes())
        zf.writestr("pets/traits.csv", "breed,large\nbeagle,0.2\nhusky,0.8\n")
    blob = out.getvalue()
    sha = hashlib.sha256(blob).hexdigest()
    store.save_dataset(dataset_id, io.BytesIO(blob), sha, owner=None, filename="pets.zip", fmt="folder", meta={})
    return sha


def doc(**params: str) -> dict:
    return {"name": "x", "workload": {"name": "table", "params": {"label": "breed", **params}}}


def test_a_folder_is_fetched_verified_unpacked_and_then_served_from_the_cache(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        sha = _save_zip(store, "a" * 32)
        cache = DatasetCache(store, tmp_path / "cache")
        got = cache.materialize(doc(data=f"dataset:{'a' * 32}/traits.csv", attributes=f"dataset:{'a' * 32}"))
        folder = tmp_path / "cache" / f"{sha}.d"
        assert got["workload"]["params"] == {"label": "breed", "data": str(folder / "traits.csv"),
                                             "attributes": str(folder)}
        assert (folder / "cat" / "1.png").read_bytes() == png_bytes()
        assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"{sha}.d"]  # no temporary left
        (folder / "marker").write_text("kept")  # a second read is served from the cache, not fetched again
        cache.materialize(doc(data=f"dataset:{'a' * 32}/traits.csv"))
        assert (folder / "marker").exists()
        assert cache.materialize(doc(data="/some/admin/path.csv"))["workload"]["params"]["data"] == \
            "/some/admin/path.csv"
        with pytest.raises(DatasetNotFound):
            cache.materialize(doc(data=f"dataset:{'b' * 32}"))
        with pytest.raises(ValueError, match="has no 'absent.csv'"):
            cache.materialize(doc(data=f"dataset:{'a' * 32}/absent.csv"))


def test_bytes_changed_in_the_store_are_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
        sha = _save_zip(store, "c" * 32)
        with store.session() as session:
            session.execute(update(BlobChunkModel).where(BlobChunkModel.sha256 == sha).values(data=b"PK tampered"))
        with pytest.raises(ValueError, match="hash to"):
            DatasetCache(store, tmp_path / "cache").materialize(doc(data=f"dataset:{'c' * 32}"))
        assert list((tmp_path / "cache").iterdir()) == []
