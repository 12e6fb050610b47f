"""Uploaded data sets: checked on the API, kept in the store (the truth), cached on each machine by sha256.

An upload is a table for the ``table`` workload (CSV or Parquet, by its file name's suffix) or a ``.zip`` of a data
folder (an ``images`` root: one sub-folder of images per class, and CSV tables). A table is refused unless the
``table`` workload can use it: at least one row, a ``label`` column without empty cells (an upload marked
``unlabelled``, such as a target domain's ``target_data``, may lack it), and every other column numeric (or
boolean) without empty cells. A zip is checked without trusting it (``tuner.workloads.archives``: entry count,
sizes, compression ratios, paths, links, file types, every image opened by Pillow). Files are parsed, never executed
or unpickled, and a refused upload leaves nothing behind: no file, no row.

An accepted upload is saved in the store (``auxtune_datasets``, its bytes chunked by sha256), so a worker on any
machine that reaches the database fetches it (``tuner.execution.datasets``); the API keeps the checked copy in its
data dir as its own cache. A spec refers to one as ``dataset:<id>``, or to a file inside a folder as
``dataset:<id>/<path>`` (``tuner.spec.dataset_refs``); ``resolve_references`` swaps in this machine's paths to
check the spec, and the study is stored with the references.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from api.auth import Principal
from api.errors import ApiError
from api.schemas import DatasetPublic
from storage import DatasetNotFound, DatasetRecord, Store
from tuner.execution.datasets import FOLDER, DatasetCache
from tuner.spec.dataset_refs import (
    ID_PATTERN,
    PREFIX,
    is_reference,
    names_dataset,
    parse_reference,
    path_inside,
    with_params,
    workload_path_params,
)
from tuner.workloads.archives import ArchiveRefused, unpack
from tuner.workloads.table_files import TableTooLarge, read_table

logger = logging.getLogger(__name__)

REFERENCE_PREFIX = PREFIX
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".zip": FOLDER}
_CHUNK = 1 << 20
__all__ = ["ID_PATTERN", "REFERENCE_PREFIX", "Datasets", "ResolvedSpec"]


def public(record: DatasetRecord) -> DatasetPublic:
    """What the API shows of a stored data set."""
    meta = record.meta
    return DatasetPublic(id=record.id, reference=REFERENCE_PREFIX + record.id, filename=record.filename,
                         format=record.format, size_bytes=record.size, sha256=record.sha256, rows=meta.get("rows"),
                         columns=list(meta.get("columns") or []), label=meta.get("label"),
                         images=meta.get("images"), tables=meta.get("tables"), contents=meta.get("contents"),
                         owner=record.owner, created_at=record.created_at)


@dataclass
class ResolvedSpec:
    """A spec document with this machine's paths for its references (``document``, to check it), the references
    to store in their place (``references``: param → reference), and the path each stands for (to hide it)."""

    document: dict[str, Any]
    references: dict[str, str] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)
    root: Path | None = None

    def hide(self, text: str) -> str:
        """``text`` with each resolved path named by its reference and the data dir as ``<data dir>``: a client
        sent references and must not learn where (or under which account) uploads live."""
        for path, ref in sorted(self.shown.items(), key=lambda kv: -len(kv[0])):
            for variant in dict.fromkeys((path, str(Path(path).resolve()))):
                text = text.replace(variant, ref)
        if self.root is not None:
            for root in dict.fromkeys((str(self.root), str(self.root.resolve()))):
                text = text.replace(root, "<data dir>")
        return text


class Datasets:
    """The data sets of one store, as the API uploads, checks and resolves them; cached under ``data_dir``."""

    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.cache = DatasetCache(store, data_dir)
        self.root = self.cache.root

    def ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def import_legacy(self) -> int:
        """Copy into the store each upload an earlier version kept only in the data dir (``<id>.json`` beside
        ``<id>.<csv|parquet>``), so its ``dataset:<id>`` keeps working; the files stay where they are (studies
        stored by that version name them by path). Returns how many were imported."""
        imported = 0
        for meta_path in sorted(self.root.glob("*.json")):
            dataset_id = meta_path.stem
            if not re.match(ID_PATTERN, dataset_id):
                continue
            try:
                self.store.dataset(dataset_id)
                continue
            except DatasetNotFound:
                pass
            try:
                old = DatasetPublic.model_validate_json(meta_path.read_text())
                data = self.root / f"{dataset_id}.{old.format}"
                digest = hashlib.sha256()
                with data.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                    f.seek(0)
                    self.store.save_dataset(dataset_id, f, digest.hexdigest(), owner=old.owner,
                                            filename=old.filename, fmt=old.format,
                                            meta={"rows": old.rows, "columns": old.columns, "label": old.label})
            except (OSError, ValueError) as exc:
                logger.warning("dataset %s of an earlier version not imported: %s", dataset_id, exc)
                continue
            imported += 1
        if imported:
            logger.info("imported %d datasets of an earlier version from %s into the store", imported, self.root)
        return imported

    # -- upload --------------------------------------------------------------------------------------------
    def save(self, source: IO[bytes], filename: str, label: str, owner: str | None, max_bytes: int,
             unlabelled: bool = False) -> DatasetPublic:
        """Copy, check, store and cache an upload (``unlabelled``: a table's label column may be absent); a refused
        upload leaves nothing behind."""
        name = Path(filename or "").name[:200]
        suffix = Path(name).suffix.lower()
        if suffix not in FORMATS:
            raise ApiError(422, f"cannot tell the format of {name!r}: upload a .csv or .parquet table, or a .zip "
                                "of a data folder", ["body", "file"], "unsupported_format")
        fmt = FORMATS[suffix]
        self.ensure_root()
        dataset_id = uuid.uuid4().hex
        incoming = self.root / f".incoming-{dataset_id}{suffix}"
        unpacked = self.root / f".incoming-{dataset_id}.d"
        try:
            size, digest = _copy(source, incoming, max_bytes)
            if fmt == FOLDER:
                meta: dict[str, Any] = _check_folder(incoming, unpacked, name)
                checked = unpacked
            else:
                rows, columns = _check_table(incoming, fmt, name, label, unlabelled)
                meta, checked = {"rows": rows, "columns": columns, "label": label}, incoming
            with incoming.open("rb") as f:
                record = self.store.save_dataset(dataset_id, f, digest, owner=owner, filename=name, fmt=fmt,
                                                 meta=meta)
            self.cache.adopt(record, checked)
        finally:
            incoming.unlink(missing_ok=True)
            shutil.rmtree(unpacked, ignore_errors=True)
        logger.info("stored dataset %s (%s, %s, %d bytes) for %s", dataset_id, name, fmt, size, owner)
        return public(record)

    # -- lookup --------------------------------------------------------------------------------------------
    def record(self, dataset_id: str, principal: Principal, loc: list[str | int]) -> DatasetRecord:
        """The data set ``dataset_id`` if it exists (404) and the caller may use it (403)."""
        try:
            record = self.store.dataset(dataset_id) if re.match(ID_PATTERN, dataset_id) else None
        except DatasetNotFound:
            record = None
        if record is None:
            raise ApiError(404, f"no dataset with id {dataset_id!r}; upload one with POST /api/v1/datasets",
                           loc, "not_found")
        if not principal.may_access(record.owner):
            raise ApiError(403, f"dataset {dataset_id} belongs to another owner", loc, "forbidden")
        return record

    def get(self, dataset_id: str, principal: Principal, loc: list[str | int]) -> DatasetPublic:
        return public(self.record(dataset_id, principal, loc))

    def delete(self, dataset_id: str, principal: Principal, loc: list[str | int]) -> None:
        """Delete the data set (404, 403 as ``record``) unless a stored study names it (409, naming the caller's
        studies among them: delete them first). Its bytes leave the store unless another upload has the same; this
        API's cached copy goes with them, and so do the files an earlier version kept for it in the data dir (else
        the next start would import it again). Workers' caches keep their copies until their cache dir is cleared.
        """
        record = self.record(dataset_id, principal, loc)
        try:
            done = self.store.delete_dataset(dataset_id, lambda spec: names_dataset(spec, dataset_id))
        except DatasetNotFound:
            raise ApiError(404, f"no dataset with id {dataset_id!r}", loc, "not_found") from None
        if done.users:
            mine = [name for name, owner in done.users if principal.may_access(owner)]
            others = len(done.users) - len(mine)
            named = ", ".join(mine[:10]) + (f" and {len(mine) - 10} more" if len(mine) > 10 else "")
            parts = [f"your stud{'y' if len(mine) == 1 else 'ies'} {named}"] if mine else []
            parts += [f"{others} stud{'y' if others == 1 else 'ies'} of other owners"] if others else []
            said = " and ".join(parts)
            raise ApiError(409, f"dataset {dataset_id} is used by {said}; delete those studies first "
                                "(DELETE /api/v1/studies/{id}), then the data set", loc, "in_use")
        for path in (self.root / f"{dataset_id}.json", self.root / f"{dataset_id}.{record.format}"):
            path.unlink(missing_ok=True)
        if done.bytes_freed:
            self.cache.evict(record)

    # -- specs ---------------------------------------------------------------------------------------------
    def resolve_references(self, spec: dict[str, Any], principal: Principal, allow_server_paths: bool) -> ResolvedSpec:
        """``spec`` with every ``dataset:<id>[/<path>]`` in the workload's file params replaced by this machine's
        copy (fetched from the store if the cache lacks it), to check the spec; the references are what is stored.

        Any other value there (a path on the API host) is refused (422) unless ``allow_server_paths``
        (``AUXTUNE_ALLOW_SERVER_PATHS``), and even then for admin tokens only (403 for others): the file is read
        with the API's and the workers' rights, so naming it is an operator's act, not any user's (with
        ``auth`` off every caller is an admin); such a path stays a path, so the workers must see the same file.
        An unknown workload is left for the spec checker to report.
        """
        keys = workload_path_params(spec)
        if not keys:
            return ResolvedSpec(spec, root=self.root)
        params = dict(spec["workload"]["params"])
        resolved = ResolvedSpec(spec, root=self.root)
        for key in keys:
            value = params.get(key)
            loc: list[str | int] = ["body", "workload", "params", key]
            if is_reference(value):
                params[key] = self._resolve(str(value), principal, loc)
                resolved.references[key] = str(value)
                resolved.shown[params[key]] = str(value)
            elif isinstance(value, str) and not allow_server_paths:
                raise ApiError(422, f"give an uploaded file as 'dataset:<id>' (upload it with POST "
                                    f"/api/v1/datasets); this server does not read paths such as {value!r}",
                               loc, "server_path")
            elif isinstance(value, str) and not principal.is_admin:
                raise ApiError(403, "only an admin token may name a file on the API host (it is read with the "
                                    "server's rights); upload the file with POST /api/v1/datasets and give its "
                                    "'dataset:<id>' here", loc, "server_path")
        resolved.document = with_params(spec, params)
        return resolved

    def _resolve(self, value: str, principal: Principal, loc: list[str | int]) -> str:
        try:
            ref = parse_reference(value)
        except ValueError as exc:
            raise ApiError(422, str(exc), loc, "bad_reference") from None
        try:
            record = self.record(ref.id, principal, loc)
        except ApiError as e:
            if e.status_code == 404:  # a bad reference in a spec is a spec error
                raise ApiError.many(422, e.items) from None
            raise
        try:
            return str(path_inside(self.cache.path(record), ref))
        except ValueError as exc:
            raise ApiError(422, str(exc), loc, "bad_reference") from None


def _copy(source: IO[bytes], target: Path, max_bytes: int) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ApiError(413, f"the file is larger than the upload limit of {max_bytes} bytes "
                                    f"({max_bytes / 1e6:.1f} MB)", ["body", "file"], "too_large")
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


def _check_folder(archive: Path, dest: Path, name: str) -> dict[str, Any]:
    """Unpack and check an uploaded zip (``tuner.workloads.archives``); a 422 naming the problem."""
    try:
        return unpack(archive, dest).as_meta()
    except ArchiveRefused as exc:
        raise ApiError(422, f"{name!r} {exc}", ["body", "file"], "bad_archive") from None


def _check_table(path: Path, fmt: str, name: str, label: str, unlabelled: bool = False) -> tuple[int, list[str]]:
    """Rows and columns of a table the ``table`` workload can use, or a 422 naming the problem (and the upload by
    its own name, never by where it is kept)."""
    import pandas as pd

    file_loc: list[str | int] = ["body", "file"]
    try:
        frame = read_table(path, fmt)  # measured before it is decoded: no decompression bomb gets through
    except TableTooLarge as exc:
        raise ApiError(422, f"{name!r} {exc}", file_loc, "too_large") from None
    except Exception as exc:  # pandas and pyarrow raise many types for unreadable input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(str(path), name)  # pyarrow names the file it read: the upload, not where it is kept
        raise ApiError(422, f"cannot read {name!r} as {fmt.upper()}: {first}", file_loc, "unparsable") from None
    frame.columns = [str(c) for c in frame.columns]
    columns = list(frame.columns)
    if frame.empty:
        raise ApiError(422, f"{name!r} has no data rows; upload a table with a header and rows", file_loc, "empty")
    if label not in columns and not unlabelled:
        raise ApiError(422, f"column {label!r} is not in {name!r} (columns: {columns[:20]}); set the form field "
                            "'label' to the column holding the class (or 'unlabelled' to true for an unlabelled "
                            "target domain)", ["body", "label"], "missing_column")
    if label in columns and frame[label].isna().any():
        raise ApiError(422, f"column {label!r} has empty cells; every row needs a class", file_loc, "empty_cells")
    others = [c for c in columns if c != label]
    if not others:
        raise ApiError(422, f"{name!r} has only the {label!r} column; add numeric feature or attribute columns",
                       file_loc, "no_features")
    non_numeric = [c for c in others if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ApiError(422, f"column(s) {non_numeric[:10]} of {name!r} are not numeric; every column except "
                            f"{label!r} must hold numbers (encode categories as numbers)", file_loc, "not_numeric")
    empty = [c for c in others if frame[c].isna().any()]
    if empty:
        raise ApiError(422, f"column(s) {empty[:10]} of {name!r} have empty cells; fill or drop them",
                       file_loc, "empty_cells")
    return len(frame), columns

