"""The data set of an ``images`` split: images read from disk per item, never held decoded.

``ImageFolderData`` is a map-style data set (``torch.utils.data.Dataset``'s protocol, without importing torch at
module level): item ``i`` is ``(image (3, size, size) float32 normalised, class, {task: target})``. It holds file
names and targets only; each access opens, decodes and resizes the file (Pillow; a JPEG is decoded at a reduced
scale when it is large). ``sample(i, seed)`` is the item with the training augmentation drawn from ``seed`` (the
engine passes a seed per sample and epoch, so a trial is reproducible whatever its loader's worker count):

- ``jitter`` j: brightness, contrast and saturation each scaled by a factor drawn uniformly in [1 − j, 1 + j]
  (in [0, 1] pixel space, clipped), in that order;
- ``flip``: a horizontal flip with probability ½;
- ``crop_padding`` p: a random crop of the image padded by p pixels on each side (padding at the mean colour,
  0 after normalisation), i.e. a shift by up to p pixels each way.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.workloads.image_files import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, P

if TYPE_CHECKING:
    import torch


class ImageReadError(ValueError):
    """An image file cannot be read; the message names ``workload.params.root``, the file and the fix.

    One-argument constructor on purpose: a DataLoader worker re-raises an exception by its type and message.
    """


def load_image(root: str, name: str, size: int) -> np.ndarray:
    """``root/name`` decoded as RGB, resized to ``size`` × ``size``: float32 ``(size, size, 3)`` in [0, 1]."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    path = Path(root) / name
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"the file is over {MAX_IMAGE_BYTES // 2**20} MiB")
        with Image.open(path) as im:
            im.draft("RGB", (size, size))  # a JPEG decodes at the smallest scale ≥ size (no-op otherwise)
            rgb = im.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.float32) * np.float32(1 / 255)
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ImageReadError(f"{P}.root: cannot read image {name!r}: {exc}; replace or remove the file") from None


def check_headers(root: str, files: Sequence[str]) -> None:
    """Open every image's header (no pixel is decoded; ~50 µs an image), so an unreadable file fails the build
    naming itself rather than a trial in its middle.

    Raises:
        ImageReadError: naming ``workload.params.root`` and the first unreadable file.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    for name in files:
        path = Path(root) / name
        try:
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise ValueError(f"the file is over {MAX_IMAGE_BYTES // 2**20} MiB")
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise ValueError(f"{im.width}×{im.height} pixels is over the limit of {MAX_IMAGE_PIXELS}")
        except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
            raise ImageReadError(f"{P}.root: cannot read image {name!r}: {exc}; replace or remove the file") from None


def _jitter(img: np.ndarray, rng: random.Random, strength: float) -> np.ndarray:
    img = img * np.float32(rng.uniform(1 - strength, 1 + strength))
    mean = img.mean()
    img = (img - mean) * np.float32(rng.uniform(1 - strength, 1 + strength)) + mean
    gray = img.mean(axis=2, keepdims=True)
    img = (img - gray) * np.float32(rng.uniform(1 - strength, 1 + strength)) + gray
    return np.clip(img, 0.0, 1.0)


def _shift(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``x`` ``(C, H, W)`` moved by (dy, dx) pixels, zeros shifted in: a crop of the zero-padded image."""
    out = np.zeros_like(x)
    h, w = x.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = x[:, max(-dy, 0):h - max(dy, 0),
                                                                     max(-dx, 0):w - max(dx, 0)]
    return out


class ImageFolderData:
    """One split of an image folder (see the module docstring).

    Args:
        root: the folder the names are relative to.
        files: the images' names, relative to ``root``.
        labels: each image's class.
        aux: per aux task, each image's target.
        size: the side images are resized to.
        mean, std: per-channel normalisation (from the training split).
        augment: ``(crop_padding, flip, jitter)`` for ``sample``, or None (``sample`` is then ``__getitem__``).
    """

    def __init__(self, root: str, files: Sequence[str], labels: np.ndarray, aux: dict[str, np.ndarray], size: int,
                 mean: np.ndarray, std: np.ndarray, augment: tuple[int, bool, float] | None = None):
        self.root, self.files, self.labels, self.aux, self.size = root, list(files), labels, aux, size
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.augment = augment if augment is not None and (augment[0] or augment[1] or augment[2]) else None

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, dict[str, float]]:
        return self.sample(index, None)

    def sample(self, index: int, seed: int | None) -> tuple[torch.Tensor, int, dict[str, float]]:
        """Item ``index``, augmented with draws from ``seed`` when this split augments (``None``: as stored)."""
        import torch

        img = load_image(self.root, self.files[index], self.size)
        rng = random.Random(seed) if self.augment is not None and seed is not None else None
        if rng is not None and self.augment is not None and self.augment[2] > 0:
            img = _jitter(img, rng, self.augment[2])
        x = ((img - self.mean) / self.std).transpose(2, 0, 1)
        if rng is not None and self.augment is not None:
            pad, flip, _ = self.augment
            if flip and rng.random() < 0.5:
                x = x[:, :, ::-1]
            if pad:
                x = _shift(x, rng.randint(-pad, pad), rng.randint(-pad, pad))
        targets = {name: float(values[index]) for name, values in self.aux.items()}
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), int(self.labels[index]), targets


def channel_statistics(root: str, files: Sequence[str], size: int, sample: int, seed: int) -> tuple[Any, Any]:
    """Per-channel mean and std of up to ``sample`` of ``files`` (drawn with ``seed``), read one at a time."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), size=min(sample, len(files)), replace=False)
    total = np.zeros(3)
    squares = np.zeros(3)
    for i in sorted(chosen.tolist()):
        img = load_image(root, files[i], size).astype(np.float64)
        total += img.mean(axis=(0, 1))
        squares += (img**2).mean(axis=(0, 1))
    mean = total / len(chosen)
    std = np.sqrt(np.maximum(squares / len(chosen) - mean**2, 0.0))
    return mean, np.maximum(std, 1e-3)
