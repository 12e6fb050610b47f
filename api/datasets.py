"""Uploaded data files for the ``table`` workload: checked with pandas, kept under the data dir by id.

An upload is read as CSV or Parquet (by its file name's suffix) and refused unless it is a table the
``table`` workload can use: at least one row, a ``label`` column without empty cells (an upload marked
``unlabelled``, such as a target domain's ``target_data``, may lack it), and every other column numeric (or
boolean) without empty cells. Files are parsed, never executed or unpickled. Each dataset is
``<data_dir>/<id>.<csv|parquet>`` plus ``<id>.json`` (what the API shows). A spec refers to one as
``dataset:<id>`` in a workload's file params; ``resolve_references`` swaps in the stored path before the spec
is checked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from api.auth import Principal
from api.errors import ApiError
from api.schemas import DatasetPublic
from tuner.workloads.table_files import TableTooLarge, read_table

logger = logging.getLogger(__name__)

REFERENCE_PREFIX = "dataset:"
ID_PATTERN = r"^[0-9a-f]{32}$"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
_CHUNK = 1 << 20


class DatasetFiles:
    """The datasets kept under one folder."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir).expanduser().absolute()

    def ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    # -- upload --------------------------------------------------------------------------------------------
    def save(self, source: IO[bytes], filename: str, label: str, owner: str | None, max_bytes: int,
             unlabelled: bool = False) -> DatasetPublic:
        """Copy, check and keep an upload (``unlabelled``: the label column may be absent); a refused upload leaves
        nothing behind."""
        name = Path(filename or "").name[:200]
        suffix = Path(name).suffix.lower()
        if suffix not in FORMATS:
            raise ApiError(422, f"cannot tell the format of {name!r}: upload a .csv or .parquet file",
                           ["body", "file"], "unsupported_format")
        self.ensure_root()
        dataset_id = uuid.uuid4().hex
        final = self.root / f"{dataset_id}.{FORMATS[suffix]}"
        incoming = self.root / f".incoming-{dataset_id}{final.suffix}"
        try:
            size, digest = _copy(source, incoming, max_bytes)
            rows, columns = _check_table(incoming, FORMATS[suffix], name, label, unlabelled)
            os.replace(incoming, final)
        finally:
            incoming.unlink(missing_ok=True)
        dataset = DatasetPublic(id=dataset_id, reference=REFERENCE_PREFIX + dataset_id, filename=name,
                                format=FORMATS[suffix], size_bytes=size, sha256=digest, rows=rows, columns=columns,
                                label=label, owner=owner, created_at=datetime.now(UTC))
        meta = self._meta_path(dataset_id)
        tmp = meta.with_suffix(".json.tmp")
        tmp.write_text(dataset.model_dump_json())
        os.replace(tmp, meta)
        logger.info("stored dataset %s (%s, %d rows) for %s", dataset_id, name, rows, owner)
        return dataset

    # -- lookup --------------------------------------------------------------------------------------------
    def get(self, dataset_id: str, principal: Principal, loc: list[str | int]) -> DatasetPublic:
        """The dataset ``dataset_id`` if it exists (404) and the caller may use it (403)."""
        meta = self._meta_path(dataset_id) if re.match(ID_PATTERN, dataset_id) else None
        if meta is None or not meta.is_file():
            raise ApiError(404, f"no dataset with id {dataset_id!r}; upload one with POST /api/v1/datasets",
                           loc, "not_found")
        dataset = DatasetPublic.model_validate_json(meta.read_text())
        if not principal.may_access(dataset.owner):
            raise ApiError(403, f"dataset {dataset_id} belongs to another owner", loc, "forbidden")
        return dataset

    def path_of(self, dataset: DatasetPublic) -> Path:
        return self.root / f"{dataset.id}.{dataset.format}"

    def _meta_path(self, dataset_id: str) -> Path:
        return self.root / f"{dataset_id}.json"

    def hide_paths(self, text: str) -> str:
        """``text`` with each stored file named by its ``dataset:<id>`` and this folder as ``<data dir>``.

        A spec's file params hold stored paths once ``resolve_references`` ran, so the spec checker's messages
        name them; a client sent references and must not learn where (or under which account) uploads live.
        """
        for root in dict.fromkeys((str(self.root), str(self.root.resolve()))):
            stored = re.escape(root + os.sep) + r"([0-9a-f]{32})\.(?:csv|parquet)\b"
            text = re.sub(stored, lambda m: REFERENCE_PREFIX + m.group(1), text).replace(root, "<data dir>")
        return text

    # -- specs ---------------------------------------------------------------------------------------------
    def resolve_references(
        self, spec: dict[str, Any], principal: Principal, allow_server_paths: bool
    ) -> dict[str, Any]:
        """``spec`` with every ``dataset:<id>`` in the workload's file params replaced by the stored file.

        Any other value there (a path on the API host) is refused (422) unless ``allow_server_paths``
        (``AUXTUNE_ALLOW_SERVER_PATHS``), and even then for admin tokens only (403 for others): the file is read
        with the API's and the workers' rights, so naming it is an operator's act, not any user's (with
        ``auth`` off every caller is an admin). An unknown workload is left for the spec checker to report.
        """
        from tuner.workloads import get_workload

        workload = spec.get("workload")
        if not isinstance(workload, dict) or not isinstance(workload.get("params"), dict):
            return spec
        try:
            path_params = get_workload(str(workload.get("name"))).path_params
        except KeyError:
            return spec
        params = dict(workload["params"])
        for key in path_params:
            value = params.get(key)
            loc: list[str | int] = ["body", "workload", "params", key]
            if isinstance(value, str) and value.startswith(REFERENCE_PREFIX):
                dataset_id = value[len(REFERENCE_PREFIX):]
                if not re.match(ID_PATTERN, dataset_id):
                    raise ApiError(422, f"{value!r} is not a dataset reference; write 'dataset:<id>' with the id "
                                        "that POST /api/v1/datasets returned", loc, "bad_reference")
                try:
                    dataset = self.get(dataset_id, principal, loc)
                except ApiError as e:
                    if e.status_code == 404:  # a bad reference in a spec is a spec error
                        raise ApiError.many(422, e.items) from None
                    raise
                params[key] = str(self.path_of(dataset))
            elif isinstance(value, str) and not allow_server_paths:
                raise ApiError(422, f"give an uploaded file as 'dataset:<id>' (upload it with POST "
                                    f"/api/v1/datasets); this server does not read paths such as {value!r}",
                               loc, "server_path")
            elif isinstance(value, str) and not principal.is_admin:
                raise ApiError(403, "only an admin token may name a file on the API host (it is read with the "
                                    "server's rights); upload the file with POST /api/v1/datasets and give its "
                                    "'dataset:<id>' here", loc, "server_path")
        return {**spec, "workload": {**workload, "params": params}}


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

