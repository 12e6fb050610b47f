"""The files of an ``images`` workload, read and checked without torch and without decoding an image.

- ``scan_classes``: ``root/<class>/*.png|jpg|jpeg`` (one sub-folder per class; only its direct files), bounded.
- ``read_score_table``: a small CSV (the per-class ``attributes`` table, or the per-image ``targets`` table),
  read with the standard library, bounded in size, rows and columns; every score a finite number.

Each refusal is a ``WorkloadError`` naming the param (``workload.params.root``, ``…attributes``, ``…targets``)
and what to change.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

from tuner.workloads._base import WorkloadError

P = "workload.params"
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
#: Most images one workload lists (20 000 images of 64×64 is the size the memory bench trains).
MAX_IMAGES = 200_000
MAX_CLASSES = 10_000
#: Largest attributes/targets CSV, and the most columns (aux tasks) it may have.
MAX_TABLE_BYTES = 64 * 2**20
MAX_TABLE_COLUMNS = 256
#: Largest image file; Pillow's own limit on decoded pixels (``Image.MAX_IMAGE_PIXELS``) is set from this too.
MAX_IMAGE_BYTES = 32 * 2**20
MAX_IMAGE_PIXELS = 64 * 2**20


@dataclass(frozen=True)
class ClassFolders:
    """The classes (sorted sub-folder names) and every image, as a path relative to the root, with its class."""

    classes: list[str]
    files: list[str]
    labels: list[int]


def scan_classes(root: str) -> ClassFolders:
    """List ``root``'s class sub-folders and their images (no image is opened).

    Raises:
        WorkloadError: naming ``workload.params.root``: not a folder, no class sub-folders, no images, fewer
            than 2 classes, or more than ``MAX_IMAGES`` images / ``MAX_CLASSES`` classes.
    """
    field = f"{P}.root"
    base = Path(root)
    if not base.is_dir():
        raise WorkloadError(field, f"not a folder: {root}; give a folder with one sub-folder of images per class")
    folders = sorted(e.name for e in os.scandir(base) if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    if not folders:
        raise WorkloadError(field, f"no class sub-folders in {root}; put each class's images in {root}/<class>/")
    if len(folders) > MAX_CLASSES:
        raise WorkloadError(field, f"{len(folders)} class sub-folders in {root}; at most {MAX_CLASSES}")
    classes: list[str] = []
    files: list[str] = []
    labels: list[int] = []
    for name in folders:
        images = sorted(e.name for e in os.scandir(base / name)
                        if e.is_file(follow_symlinks=False) and e.name.lower().endswith(IMAGE_SUFFIXES))
        if not images:
            continue
        label = len(classes)
        classes.append(name)
        files += [f"{name}/{image}" for image in images]
        labels += [label] * len(images)
        if len(files) > MAX_IMAGES:
            raise WorkloadError(field, f"more than {MAX_IMAGES} images in {root}; use a sample of them")
    if not files:
        raise WorkloadError(field, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the class sub-folders of {root}")
    if len(classes) < 2:
        raise WorkloadError(field, f"only one class sub-folder with images in {root} ({classes[0]!r}); the main "
                                   "task needs at least 2 classes")
    return ClassFolders(classes, files, labels)


@dataclass(frozen=True)
class ScoreTable:
    """A CSV of scores: the key column's values (one per row) and each other column's numbers, by name."""

    keys: list[str]
    columns: dict[str, list[float]]


def read_score_table(path: str, field: str, key: str, max_rows: int) -> ScoreTable:
    """Read ``path``: a header with ``key`` and score columns, then one row per key; every score a number.

    Raises:
        WorkloadError: naming ``field``: missing or too large file, no ``key`` column, a duplicate key, a
            row of another width, an empty or non-numeric score.
    """
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(field, f"file not found: {path}; give a CSV file")
    if p.stat().st_size > MAX_TABLE_BYTES:
        raise WorkloadError(field, f"{path} is over {MAX_TABLE_BYTES // 2**20} MiB; a score table is small")
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = [h.strip() for h in next(rows, [])]
            if key not in header:
                raise WorkloadError(field, f"{path} needs a column named {key!r}; its columns are {header[:20]}")
            if len(header) > MAX_TABLE_COLUMNS:
                raise WorkloadError(field, f"{path} has {len(header)} columns; at most {MAX_TABLE_COLUMNS}")
            names = [h for h in header if h != key]
            at = header.index(key)
            keys: list[str] = []
            columns: dict[str, list[float]] = {name: [] for name in names}
            for line, row in enumerate(rows, start=2):
                if not row:
                    continue
                if len(keys) >= max_rows:
                    raise WorkloadError(field, f"{path} has more than {max_rows} rows")
                if len(row) != len(header):
                    raise WorkloadError(field, f"line {line} of {path} has {len(row)} cells; the header has "
                                               f"{len(header)}")
                keys.append(row[at].strip())
                for name, cell in zip(header, row, strict=True):
                    if name != key:
                        columns[name].append(_score(cell, name, line, path, field))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise WorkloadError(field, f"cannot read {path} as CSV: {exc}") from None
    seen: set[str] = set()
    for k in keys:
        if k in seen:
            raise WorkloadError(field, f"{key} {k!r} has more than one row in {path}; keep one row each")
        seen.add(k)
    return ScoreTable(keys, columns)


def _score(cell: str, column: str, line: int, path: str, field: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise WorkloadError(field, f"column {column!r} of {path}, line {line}: {cell!r} is not a number; "
                                   "give every score as a finite number")
    return value


def check_unit_scores(table: ScoreTable, path: str, field: str) -> None:
    """Soft targets: every score in [0, 1], else a ``WorkloadError`` naming ``field`` with the first bad one."""
    for name, values in table.columns.items():
        for k, value in zip(table.keys, values, strict=True):
            if not 0.0 <= value <= 1.0:
                raise WorkloadError(field, f"column {name!r} of {path} has {value:g} for {k!r}: scores are soft "
                                           "targets in [0, 1]; rescale them")
