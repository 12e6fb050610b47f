"""Generated target domains of images: a copy of the images noised, blurred or shifted.

A workload builds its target domain with them (``digits``: ``params.target_shift``); the engine's domain
adaptation (``tuner.engine.domain``) then trains on it. torch is imported inside the function, as every
workload does, so the registry and the spec checks stay torch-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

ShiftName = Literal["none", "noise", "blur", "shift"]
SHIFTS: tuple[str, ...] = ("noise", "blur", "shift")


def shift_images(x: torch.Tensor, shift: str, strength: float, seed: int) -> torch.Tensor:
    """A shifted copy of images ``x`` (N, C, H, W) in [0, 1]: the generated target domain.

    - ``noise``: Gaussian pixel noise of standard deviation ``0.3 · strength``;
    - ``blur``: a 3×3 box blur applied ``round(2 · strength)`` times (at least once);
    - ``shift``: translated right and down by ``max(1, round(2 · strength))`` pixels, zero-filled.
    """
    import torch
    import torch.nn.functional as F

    if shift == "noise":
        g = torch.Generator().manual_seed(seed)
        return (x + 0.3 * strength * torch.randn(x.shape, generator=g)).clamp(0.0, 1.0)
    if shift == "blur":
        kernel = torch.full((x.shape[1], 1, 3, 3), 1.0 / 9.0)
        out = x
        for _ in range(max(1, round(2 * strength))):
            out = F.conv2d(out, kernel, padding=1, groups=x.shape[1])
        return out
    if shift == "shift":
        k = max(1, round(2 * strength))
        out = torch.zeros_like(x)
        out[..., k:, k:] = x[..., :-k, :-k]
        return out
    raise ValueError(f"unknown shift {shift!r}; allowed: {', '.join(SHIFTS)}")
