"""``images``: your own image folder, read from disk per batch (Pillow decodes; no torchvision), the pets recipe.

- ``root``: a folder with one sub-folder per class, ``root/<class>/*.png|jpg|jpeg`` (the main task's classes
  are the sub-folder names, sorted).
- ``attributes`` (optional): a CSV with one row per class: a column ``class`` naming the sub-folder, then one
  column per aux task, scores in [0, 1] (soft targets: each image gets its class's scores).
- ``targets`` (optional): a per-image CSV: a column ``file`` (the image's path relative to ``root``, e.g.
  ``beagle/01.png``), then one column per aux task (soft in [0, 1], else real-valued: loss ``mse``); every
  image needs a row.

Images are resized to ``image_size`` × ``image_size`` RGB. The splits are stratified by class and drawn with
``split_seed`` (``val_fraction``, ``test_fraction`` of each class). Each channel is normalised with the mean and
std of up to ``normalise_images`` training images (read one at a time). ``augment`` (training split only, a new
draw per sample per epoch, seeded: ``tuner.workloads.image_data``): ``crop_padding`` (0–``image_size``/4
pixels), ``flip`` (horizontal), ``jitter`` (0–0.5: brightness, contrast, saturation). The splits are data sets
(``ImageFolderData``), so the engine trains from a DataLoader (``training.loader``) and nothing is held decoded.
``describe_tasks`` lists folders and reads the CSVs only: no image is opened and torch is not imported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from tuner.workloads._base import TaskInfo, Workload, WorkloadData, WorkloadError, WorkloadParams
from tuner.workloads._limits import Seed
from tuner.workloads.image_data import ImageFolderData, ImageReadError, channel_statistics, check_headers
from tuner.workloads.image_files import (
    MAX_CLASSES,
    MAX_IMAGES,
    ClassFolders,
    P,
    ScoreTable,
    check_unit_scores,
    read_score_table,
    scan_classes,
)

MAX_IMAGE_SIZE = 256
#: The column of ``attributes`` naming the class sub-folder, and of ``targets`` naming the image.
CLASS_COLUMN, FILE_COLUMN = "class", "file"


class AugmentParams(WorkloadParams):
    """The training split's augmentation (off by default); see ``tuner.workloads.image_data``."""

    crop_padding: int = Field(0, ge=0, le=MAX_IMAGE_SIZE // 4,
                              description="random crop of the image padded by this many pixels (≤ image_size/4)")
    flip: bool = Field(False, description="random horizontal flip")
    jitter: float = Field(0.0, ge=0.0, le=0.5, description="brightness/contrast/saturation factor in [1-j, 1+j]")


class ImagesParams(WorkloadParams):
    root: str = Field(min_length=1, description="folder with one sub-folder of images per class")
    attributes: str | None = Field(None, description="CSV: a 'class' column, then per-class scores in [0, 1]")
    targets: str | None = Field(None, description="CSV: a 'file' column (relative to root), then per-image targets")
    image_size: int = Field(64, ge=8, le=MAX_IMAGE_SIZE, description="side the images are resized to")
    val_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    split_seed: Seed = 0
    normalise_images: int = Field(500, ge=1, le=10_000,
                                  description="training images read for the per-channel mean and std")
    augment: AugmentParams = Field(default_factory=AugmentParams)

    @model_validator(mode="after")
    def _fits(self) -> ImagesParams:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be < 1 to leave training images")
        if self.augment.crop_padding > self.image_size // 4:
            raise ValueError(f"augment.crop_padding must be ≤ image_size/4 = {self.image_size // 4}")
        return self


def _version(path: str | None) -> int:
    """A file's modification time (0 when absent): a cache key that changes when it is edited."""
    try:
        return os.stat(path).st_mtime_ns if path is not None else 0
    except OSError:
        return 0


def _tree_version(root: str) -> int:
    """A key that changes when a class sub-folder, or an image in one, is added, removed or renamed: the
    modification times of ``root`` and of its sub-folders (one directory listing, no image opened)."""
    try:
        with os.scandir(root) as entries:
            return hash((_version(root), *sorted(e.stat(follow_symlinks=False).st_mtime_ns
                                                 for e in entries if e.is_dir(follow_symlinks=False))))
    except OSError:
        return 0


def _listing(root: str, attributes: str | None, targets: str | None) -> tuple[ClassFolders, ScoreTable | None,
                                                                              ScoreTable | None]:
    """The folders and tables, listed and checked once per version of the folders and the CSV files."""
    return _checked_listing(root, attributes, targets, _tree_version(root), _version(attributes), _version(targets))


@lru_cache(maxsize=16)
def _checked_listing(root: str, attributes: str | None, targets: str | None,
                     *versions: int) -> tuple[ClassFolders, ScoreTable | None, ScoreTable | None]:
    folders = scan_classes(root)
    attrs = None
    if attributes is not None:
        attrs = read_score_table(attributes, f"{P}.attributes", CLASS_COLUMN, MAX_CLASSES)
        check_unit_scores(attrs, attributes, f"{P}.attributes")
        missing = sorted(set(folders.classes) - set(attrs.keys))
        if missing:
            raise WorkloadError(f"{P}.attributes", f"classes {missing[:10]} have no row in {attributes}; add one "
                                                   f"row per class sub-folder (column {CLASS_COLUMN!r})")
    per_image = None
    if targets is not None:
        per_image = read_score_table(targets, f"{P}.targets", FILE_COLUMN, MAX_IMAGES)
        keys = [k.replace("\\", "/").removeprefix("./") for k in per_image.keys]
        per_image = ScoreTable(keys, per_image.columns)
        missing = sorted(set(folders.files) - set(keys))
        if missing:
            raise WorkloadError(f"{P}.targets", f"{len(missing)} images have no row in {targets} (e.g. "
                                                f"{missing[:3]}); give every image a row ({FILE_COLUMN!r} relative "
                                                "to root)")
        both = sorted(set(per_image.columns) & set(attrs.columns if attrs is not None else ()))
        if both:
            raise WorkloadError(f"{P}.targets", f"columns {both} are in both attributes and targets; keep each "
                                                "aux task in one table")
    return folders, attrs, per_image


class ImagesWorkload(Workload):
    name: ClassVar[str] = "images"
    description: ClassVar[str] = "your image folder (one sub-folder per class) + per-class attribute scores"
    params_model: ClassVar[type[WorkloadParams]] = ImagesParams
    path_params: ClassVar[tuple[str, ...]] = ("root", "attributes", "targets")
    reads_per_item: ClassVar[bool] = True

    @property
    def p(self) -> ImagesParams:
        return self.params  # type: ignore[return-value]

    def _files(self) -> tuple[ClassFolders, ScoreTable | None, ScoreTable | None]:
        return _listing(self.p.root, self.p.attributes, self.p.targets)

    def describe_tasks(self) -> dict[str, TaskInfo]:
        _, attrs, per_image = self._files()
        tasks = {name: TaskInfo(name, "soft", 1, "per-class score in [0, 1] (attributes)")
                 for name in (attrs.columns if attrs is not None else {})}
        for name, values in (per_image.columns if per_image is not None else {}).items():
            soft = all(0.0 <= v <= 1.0 for v in values)
            tasks[name] = (TaskInfo(name, "soft", 1, "per-image score in [0, 1] (targets)") if soft else
                           TaskInfo(name, "real", 1, f"per-image values in [{min(values):g}, {max(values):g}]"))
        return tasks

    def describe_shapes(self, aux_tasks: Sequence[str] = ()) -> tuple[tuple[int, ...], int]:
        return (3, self.p.image_size, self.p.image_size), len(self._files()[0].classes)

    def split_indices(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Train, val and test indices, stratified by class, drawn with ``split_seed``; every class keeps at least
        one training image."""
        p = self.p
        rng = np.random.default_rng(p.split_seed)
        parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for label in np.unique(labels):
            index = rng.permutation(np.flatnonzero(labels == label))
            n_val = int(round(len(index) * p.val_fraction))
            n_test = min(int(round(len(index) * p.test_fraction)), len(index) - 1 - n_val)
            n_val = min(n_val, len(index) - 1)
            n_test = max(n_test, 0)
            parts[1].append(index[:n_val])
            parts[2].append(index[n_val:n_val + n_test])
            parts[0].append(index[n_val + n_test:])
        train, val, test = (np.sort(np.concatenate(part)) for part in parts)
        if len(val) == 0 or len(test) == 0:
            raise WorkloadError(f"{P}.root", f"{len(labels)} images leave no validation or test image; give more "
                                             "images or raise val_fraction/test_fraction")
        return train, val, test

    def build(self, aux_tasks: Sequence[str] = ()) -> WorkloadData:
        p = self.p
        folders, attrs, per_image = self._files()
        labels = np.asarray(folders.labels, dtype=np.int64)
        aux: dict[str, np.ndarray] = {}
        if attrs is not None:
            row = {k: i for i, k in enumerate(attrs.keys)}
            order = np.asarray([row[c] for c in folders.classes])
            for name, values in attrs.columns.items():
                aux[name] = np.asarray(values, dtype=np.float32)[order][labels]
        if per_image is not None:
            row = {k: i for i, k in enumerate(per_image.keys)}
            at = np.asarray([row[f] for f in folders.files])
            for name, values in per_image.columns.items():
                aux[name] = np.asarray(values, dtype=np.float32)[at]
        train, val, test = self.split_indices(labels)
        names = folders.files
        try:
            check_headers(p.root, names)
        except ImageReadError as exc:
            field, _, message = str(exc).partition(": ")
            raise WorkloadError(field, message) from None
        mean, std = channel_statistics(p.root, [names[i] for i in train], p.image_size, p.normalise_images,
                                       p.split_seed)
        augment = (p.augment.crop_padding, p.augment.flip, p.augment.jitter)

        def split(index: np.ndarray, augmented: bool) -> ImageFolderData:
            return ImageFolderData(p.root, [names[i] for i in index], labels[index],
                                   {k: v[index] for k, v in aux.items()}, p.image_size, mean, std,
                                   augment if augmented else None)

        return WorkloadData(train=split(train, True), val=split(val, False), test=split(test, False),  # type: ignore[arg-type]
                            input_shape=(3, p.image_size, p.image_size), n_classes=len(folders.classes),
                            tasks=self.describe_tasks(), class_names=list(folders.classes))
