"""A machine's cache of uploaded data sets, fetched from the store by their sha256: no shared filesystem needed.

``DatasetCache(store, root).materialize(spec_document)`` swaps every ``dataset:<id>[/<path>]`` in the workload's
file params for the path of this machine's copy. A copy is fetched a chunk at a time into a temporary file beside
the cache, its digest verified against the sha256 the store holds, a zip unpacked (with the upload limits of
``tuner.workloads.archives``) into a temporary folder, and only then renamed into place, so a copy is never seen
half-written and two processes fetching the same data set at once both end with one good copy. Entries are
``<sha256>.csv``/``<sha256>.parquet`` for tables and ``<sha256>.d/`` for folders. The workers (``--cache-dir``,
``AUXTUNE_CACHE_DIR``, default ``~/.cache/auxtune/datasets``) and the API (its data dir) each keep one.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage import DatasetRecord, Store
from tuner.spec.dataset_refs import is_reference, parse_reference, path_inside, with_params, workload_path_params
from tuner.workloads.archives import unpack

logger = logging.getLogger(__name__)

CACHE_ENV = "AUXTUNE_CACHE_DIR"
FOLDER = "folder"


def default_cache_dir() -> Path:
    """``$AUXTUNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/auxtune/datasets``, else ``~/.cache/auxtune/datasets``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "auxtune" / "datasets"


class DatasetCache:
    """The data sets of one store, cached under ``root``."""

    def __init__(self, store: Store, root: Path | None = None) -> None:
        self.store = store
        self.root = Path(root if root is not None else default_cache_dir()).expanduser().absolute()

    def entry(self, record: DatasetRecord) -> Path:
        """Where ``record``'s copy lives (or will) in this cache."""
        return self.root / (f"{record.sha256}.d" if record.format == FOLDER else f"{record.sha256}.{record.format}")

    def path(self, record: DatasetRecord) -> Path:
        """The path of this machine's copy of ``record``, fetched from the store first if there is none."""
        final = self.entry(record)
        if not final.exists():
            self._fetch(record, final)
        return final

    def evict(self, record: DatasetRecord) -> None:
        """Remove this cache's copy of ``record`` (its bytes have left the store), if it has one."""
        self._remove(self.entry(record))

    def adopt(self, record: DatasetRecord, checked: Path) -> None:
        """Move ``checked`` (the file or unpacked folder the API has just checked and stored) into the cache."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._place(checked, self.entry(record))

    def materialize(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """``doc`` (a stored spec) with every data set reference in its workload's file params replaced by the
        path of the cached copy. Raises ``DatasetNotFound`` (a store error) for a data set the store lacks and
        ``ValueError`` for a path a folder does not hold."""
        keys = [k for k in workload_path_params(doc) if is_reference(doc["workload"]["params"].get(k))]
        if not keys:
            return dict(doc)
        params = dict(doc["workload"]["params"])
        for key in keys:
            ref = parse_reference(params[key])
            params[key] = str(path_inside(self.path(self.store.dataset(ref.id)), ref))
        return with_params(doc, params)

    # -- fetching ------------------------------------------------------------------------------------------
    def _fetch(self, record: DatasetRecord, final: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".fetch-{uuid.uuid4().hex}.{record.format}"
        unpacked = self.root / f".unpack-{uuid.uuid4().hex}"
        try:
            digest = hashlib.sha256()
            with tmp.open("wb") as out:
                for seq in range(self.store.blob_chunks(record.sha256)):  # one statement a chunk, each retried
                    chunk = self.store.blob_chunk(record.sha256, seq)
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != record.sha256:
                raise ValueError(f"dataset:{record.id}: the stored bytes hash to {digest.hexdigest()}, not "
                                 f"{record.sha256}; upload it again")
            if record.format == FOLDER:  # the API checked its files; the paths and sizes are checked again here
                unpack(tmp, unpacked, check_files=False)
                self._place(unpacked, final)
            else:
                self._place(tmp, final)
            logger.info("cached dataset %s (%d bytes, sha256 %s) at %s", record.id, record.size, record.sha256,
                        final)
        finally:
            tmp.unlink(missing_ok=True)
            shutil.rmtree(unpacked, ignore_errors=True)

    @staticmethod
    def _place(ready: Path, final: Path) -> None:
        """Rename ``ready`` to ``final`` in one step; if another process placed it first, keep theirs."""
        try:
            os.replace(ready, final)
        except OSError:
            if not final.exists():
                raise
            DatasetCache._remove(ready)

    @staticmethod
    def _remove(path: Path) -> None:
        """Remove the file or folder ``path``; nothing if there is none."""
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
