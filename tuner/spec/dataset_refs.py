"""``dataset:<id>`` references in a workload's file params: their syntax, and the params that may hold one.

A spec names an uploaded data set (``POST /api/v1/datasets``) as ``dataset:<id>``; a file inside an uploaded
folder (a zip) as ``dataset:<id>/<path inside it>``, e.g. ``attributes: dataset:<id>/attributes.csv`` beside
``root: dataset:<id>/images``. The stored spec keeps the reference; the API (to check the spec at submission) and
each worker (to run it) swap in the path of their own cached copy, fetched from the store by its sha256.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "dataset:"
ID_PATTERN = r"^[0-9a-f]{32}$"
_PART = re.compile(r"^[^/\\\x00-\x1f]+$")
HOW = "write 'dataset:<id>' with the id that POST /api/v1/datasets returned, or 'dataset:<id>/<path>' for a file " \
      "inside an uploaded folder"


@dataclass(frozen=True)
class DatasetRef:
    """A parsed reference: the data set's id and the path inside it (``()``: the data set itself)."""

    id: str
    inner: tuple[str, ...] = ()

    def __str__(self) -> str:
        return PREFIX + "/".join((self.id, *self.inner))


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def names_dataset(value: Any, dataset_id: str) -> bool:
    """Whether ``value`` (a stored spec document, or anything in it) refers to the data set ``dataset_id``, as
    ``dataset:<id>`` or ``dataset:<id>/<path>``. Every value is looked at, not only the workload's known file
    params, so a study of a plugin workload this host lacks still counts."""
    if isinstance(value, str):
        return is_reference(value) and value[len(PREFIX):].partition("/")[0] == dataset_id
    if isinstance(value, Mapping):
        return any(names_dataset(v, dataset_id) for v in value.values())
    if isinstance(value, list):
        return any(names_dataset(v, dataset_id) for v in value)
    return False


def parse_reference(value: str) -> DatasetRef:
    """The reference ``value`` (which starts with ``dataset:``); ``ValueError`` saying how to write one."""
    dataset_id, _, inner = value[len(PREFIX):].partition("/")
    if not re.match(ID_PATTERN, dataset_id):
        raise ValueError(f"{value[:200]!r} is not a dataset reference; {HOW}")
    parts = tuple(inner.split("/")) if inner else ()
    if any(p in (".", "..") or not _PART.match(p) for p in parts) or len(inner) > 400:
        raise ValueError(f"{value[:200]!r}: the path inside the data set must be plain names joined by '/' (no "
                         f"'..', '.', empty parts or backslashes); {HOW}")
    return DatasetRef(dataset_id, parts)


def path_inside(folder: Path, ref: DatasetRef) -> Path:
    """The path ``ref`` names in ``folder`` (a cached copy of its data set); ``ValueError`` when there is none."""
    if not ref.inner:
        return folder
    if not folder.is_dir():
        raise ValueError(f"{ref} names a path inside dataset:{ref.id}, which is a single table, not a folder; "
                         f"write dataset:{ref.id}")
    target = folder.joinpath(*ref.inner)
    if not target.exists() or not target.resolve().is_relative_to(folder.resolve()):
        top = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())[:20]
        raise ValueError(f"dataset:{ref.id} has no {'/'.join(ref.inner)!r}; its top level holds {top}")
    return target


def workload_path_params(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The file params of the spec document's workload (``()`` without a known workload or params)."""
    from tuner.workloads import get_workload

    workload = doc.get("workload")
    if not isinstance(workload, Mapping) or not isinstance(workload.get("params"), Mapping):
        return ()
    try:
        return tuple(get_workload(str(workload.get("name"))).path_params)
    except KeyError:
        return ()


def with_params(doc: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The spec document with its workload's params replaced by ``params``."""
    return {**doc, "workload": {**doc["workload"], "params": dict(params)}}
