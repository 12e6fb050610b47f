"""Uploaded data sets (``auxtune_datasets``) and their bytes (``auxtune_blobs``, chunked by SHA-256).

The store keeps bytes and a JSON meta document and checks nothing about them beyond their digest: the API checks
an upload before it is saved (``api.datasets``), and a worker fetches it a chunk at a time by its digest and caches
it (``tuner.execution.datasets``). Chunks are written and read one statement each, so neither side holds a whole
upload in memory, on SQLite as on PostgreSQL; identical uploads share one blob.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sqlalchemy import delete, exc, func, insert, select, update
from sqlalchemy.orm import Session

from storage._core import StoreCore, as_utc, json_safe, utcnow
from storage.errors import DatasetNotFound, StoreError
from storage.models import BlobChunkModel, BlobModel, DatasetModel, StudyModel

#: Bytes per stored chunk: small enough for any driver's parameter, large enough that 50 MB is 50 statements.
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class DatasetRecord:
    """An uploaded data set, without its bytes: who owns it, its format, what its check found (``meta``)."""

    id: str
    sha256: str
    owner: str | None
    filename: str
    format: str
    size: int
    meta: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class DatasetDeletion:
    """What ``delete_dataset`` did: ``users`` (name, owner) of the studies naming the data set, which kept it (nothing
    deleted); else ``bytes_freed``: whether its blob went too (no other data set had the same bytes)."""

    users: list[tuple[str, str | None]]
    bytes_freed: bool = False


def _record(row: DatasetModel) -> DatasetRecord:
    return DatasetRecord(id=row.id, sha256=row.sha256, owner=row.owner, filename=row.filename, format=row.format,
                         size=int(row.size), meta=dict(row.meta), created_at=as_utc(row.created_at) or utcnow())


class DatasetOps(StoreCore):
    def save_dataset(self, dataset_id: str, source: IO[bytes], sha256: str, *, owner: str | None, filename: str,
                     fmt: str, meta: Mapping[str, Any]) -> DatasetRecord:
        """Save the data set ``dataset_id`` with the bytes read from ``source`` (a chunk at a time), whose SHA-256
        must be ``sha256``: the blob is written unless one with that digest exists, then the dataset row, in one
        transaction.

        Raises:
            ValueError: ``source`` did not hash to ``sha256`` (nothing is stored).
        """
        for attempt in range(2):
            start = source.tell()
            try:
                with self.session("saving a data set") as session:
                    blob = session.get(BlobModel, sha256)
                    size = self._write_blob(session, source, sha256) if blob is None else int(blob.size)
                    row = DatasetModel(id=dataset_id, sha256=sha256, owner=owner, filename=filename[:200],
                                       format=fmt, size=size, meta=json_safe(dict(meta)), created_at=self._now())
                    session.add(row)
                    session.flush()
                    session.refresh(row)
                    return _record(row)
            except StoreError as e:  # the same bytes saved by another upload at the same moment: theirs is kept
                if attempt or not isinstance(e.__cause__, exc.IntegrityError):
                    raise
                source.seek(start)
        raise AssertionError("unreachable")

    @staticmethod
    def _write_blob(session: Session, source: IO[bytes], sha256: str) -> int:
        session.execute(insert(BlobModel).values(sha256=sha256, size=0, chunks=0, created_at=utcnow()))
        digest, size, seq = hashlib.sha256(), 0, 0
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
            session.execute(insert(BlobChunkModel).values(sha256=sha256, seq=seq, data=chunk))
            seq += 1
        if digest.hexdigest() != sha256:
            raise ValueError(f"the bytes given hash to {digest.hexdigest()}, not {sha256}")
        session.execute(update(BlobModel).where(BlobModel.sha256 == sha256).values(size=size, chunks=seq))
        return size

    def dataset(self, dataset_id: str) -> DatasetRecord:
        """The data set ``dataset_id``; ``DatasetNotFound`` if there is none."""
        with self.session("reading a data set") as session:
            row = session.get(DatasetModel, dataset_id)
            if row is None:
                raise DatasetNotFound(f"no dataset with id {dataset_id!r}")
            return _record(row)

    def delete_dataset(self, dataset_id: str, names_it: Callable[[Mapping[str, Any]], bool]) -> DatasetDeletion:
        """Delete the data set ``dataset_id`` unless a stored study names it (``names_it(spec)``: the reference
        syntax is the caller's, ``tuner.spec.dataset_refs.names_dataset``; then nothing is deleted and ``users``
        names those studies: delete them first). Its bytes go in the same transaction unless another data set has
        the same digest. ``DatasetNotFound`` if there is none.

        The studies are read in the same transaction, one row at a time (specs are small). A study submitted at the
        same moment checked the data set before it was deleted; its workers then fail to fetch it, naming it."""
        with self.session("deleting a data set") as session:
            row = session.get(DatasetModel, dataset_id)
            if row is None:
                raise DatasetNotFound(f"no dataset with id {dataset_id!r}")
            users = [(name, owner) for name, owner, spec in
                     session.execute(select(StudyModel.name, StudyModel.owner, StudyModel.spec).order_by(StudyModel.id))
                     if names_it(spec)]
            if users:
                return DatasetDeletion(users)
            sha256 = row.sha256
            session.delete(row)
            session.flush()
            if session.scalar(select(func.count()).select_from(DatasetModel).where(DatasetModel.sha256 == sha256)):
                return DatasetDeletion([], bytes_freed=False)
            session.execute(delete(BlobChunkModel).where(BlobChunkModel.sha256 == sha256))
            session.execute(delete(BlobModel).where(BlobModel.sha256 == sha256))
            return DatasetDeletion([], bytes_freed=True)

    def blob_chunks(self, sha256: str) -> int:
        """How many chunks the blob ``sha256`` has (read them with ``blob_chunk``); ``DatasetNotFound`` if none."""
        with self.session("reading a data set's size") as session:
            chunks = session.scalar(select(BlobModel.chunks).where(BlobModel.sha256 == sha256))
            if chunks is None:
                raise DatasetNotFound(f"no stored bytes with sha256 {sha256}")
            return int(chunks)

    def blob_chunk(self, sha256: str, seq: int) -> bytes:
        """Chunk ``seq`` (from 0) of the blob ``sha256``: one statement, so each is retried on its own."""
        with self.session("reading a data set's bytes") as session:
            data = session.scalar(select(BlobChunkModel.data).where(BlobChunkModel.sha256 == sha256,
                                                                    BlobChunkModel.seq == seq))
            if data is None:
                raise DatasetNotFound(f"stored bytes {sha256} have no chunk {seq}")
            return bytes(data)
