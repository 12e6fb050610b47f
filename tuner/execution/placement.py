"""Placing local workers on GPUs: one worker process per listed GPU, each seeing only its own as ``cuda:0``.

``auxtune serve --gpus all|0,2,3`` and ``auxtune worker --gpus …`` start one worker (``--workers-per-gpu N``:
N) per GPU with ``CUDA_VISIBLE_DEVICES`` set to that GPU's host index, so a spec's ``device: auto`` (or
``cuda``) trains on it and nothing else; before, every embedded worker took GPU 0. Each worker records the
device it got (:func:`worker_device`: the GPU's index as the host numbers it, its name and memory, or the CPU)
in its store record, which ``/workers``, ``auxtune status`` and the study page show.

The one test hook: ``$AUXTUNE_FAKE_GPUS`` (``FAKE_GPUS_ENV``), read only by :func:`host_gpus`, :func:`gpu_count`
and :func:`worker_device`, makes this machine look as if it had those GPUs (``"NAME:GIB,NAME:GIB"``, or a count) so
placement and the recorded devices can be tested without one; training itself still runs where torch can (the
CPU here). Nothing else reads it; never set it on a real machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

#: Test hook: fake GPUs of this machine, ``"NAME:GIB,NAME:GIB"`` or a count (see the module docstring).
FAKE_GPUS_ENV = "AUXTUNE_FAKE_GPUS"
#: Most workers one GPU may get (``--workers-per-gpu``): past a few, population batching fills a GPU better.
MAX_WORKERS_PER_GPU = 64
_GIB = 1 << 30


class PlacementError(ValueError):
    """``--gpus`` or ``--workers-per-gpu`` cannot be honoured here; the message names the flag and the fix."""


@dataclass(frozen=True)
class Gpu:
    """One GPU as the host numbers it."""

    index: int
    name: str
    memory_bytes: int

    def record(self) -> dict[str, Any]:
        """As a worker's store record keeps it (``storage.WorkerRecord.gpu``)."""
        return {"index": self.index, "name": self.name, "memory_bytes": self.memory_bytes}


def _fake_gpus(text: str) -> list[Gpu]:
    text = text.strip()
    if text.isdigit():
        return [Gpu(i, "fake GPU", 16 * _GIB) for i in range(int(text))]
    gpus = []
    for i, item in enumerate(p for p in text.split(",") if p.strip()):
        name, _, gib = item.strip().rpartition(":")
        gpus.append(Gpu(i, name or item.strip(), int(float(gib) * _GIB) if name else 16 * _GIB))
    return gpus


def host_gpus() -> list[Gpu]:
    """The GPUs of this machine, as it numbers them (``$AUXTUNE_FAKE_GPUS`` when set: the test hook)."""
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        return _fake_gpus(fake)
    import torch

    if not torch.cuda.is_available():
        return []
    return [_torch_gpu(torch, i, i) for i in range(torch.cuda.device_count())]


def gpu_count() -> int:
    """How many GPUs this machine has (``$AUXTUNE_FAKE_GPUS`` when set), without initialising CUDA here."""
    fake = os.environ.get(FAKE_GPUS_ENV)
    if fake is not None:
        return len(_fake_gpus(fake))
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def _torch_gpu(torch: Any, local: int, host_index: int) -> Gpu:
    props = torch.cuda.get_device_properties(local)
    return Gpu(host_index, str(props.name), int(props.total_memory))


def parse_gpus(text: str, available: int) -> list[int]:
    """The host GPU indices ``--gpus`` names (``all`` or ``0,2,3``), checked against the ``available`` count.

    Raises:
        PlacementError: no GPU here, a malformed list, an index past the machine's, or one listed twice.
    """
    if available == 0:
        raise PlacementError("--gpus: this machine has no CUDA GPU (torch sees none); leave --gpus out to run on "
                             "the CPU (--workers N), or run on a machine with GPUs")
    text = text.strip()
    if text == "all":
        return list(range(available))
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise PlacementError(f"--gpus: {text!r} is not 'all' or a list of GPU indices like 0,2,3") from None
    bad = [i for i in indices if not 0 <= i < available]
    if bad:
        raise PlacementError(f"--gpus: GPU {bad[0]} is not on this machine, which has {available} "
                             f"(indices 0 to {available - 1}); list only those, or say --gpus all")
    if len(set(indices)) != len(indices):
        raise PlacementError(f"--gpus: {text!r} lists a GPU twice; use --workers-per-gpu N for more workers per GPU")
    return indices


def placement(gpus: str, workers_per_gpu: int = 1) -> list[int]:
    """The host GPU index of each worker to start: every GPU ``gpus`` names, ``workers_per_gpu`` times in turn.

    Raises:
        PlacementError: see :func:`parse_gpus`; ``workers_per_gpu`` outside 1 … ``MAX_WORKERS_PER_GPU``.
    """
    if not 1 <= workers_per_gpu <= MAX_WORKERS_PER_GPU:
        raise PlacementError(f"--workers-per-gpu: {workers_per_gpu} is not from 1 to {MAX_WORKERS_PER_GPU}; for "
                             "small models, population batching (population.size) fills a GPU better")
    indices = parse_gpus(gpus, gpu_count())
    return [i for i in indices for _ in range(workers_per_gpu)]


def gpu_environment(index: int) -> dict[str, str]:
    """The environment a worker placed on GPU ``index`` starts with: it sees that GPU alone, as ``cuda:0``.

    ``index`` counts the GPUs this process sees: the host's numbering, or, when this process was itself started
    with ``CUDA_VISIBLE_DEVICES``, positions in that list (``--gpus 0`` under ``CUDA_VISIBLE_DEVICES=2,3`` is GPU 2).
    """
    visible = [p.strip() for p in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if p.strip()]
    return {**os.environ, "CUDA_VISIBLE_DEVICES": visible[index] if index < len(visible) else str(index)}


def _visible_indices() -> list[int] | None:
    """Host indices of the GPUs this process sees, in its own order (None: all, or not plain indices)."""
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None or not raw.strip():
        return None
    try:
        return [int(p) for p in raw.split(",")]
    except ValueError:  # GPU UUIDs: the host's numbering is not known here
        return None


def worker_device(device: str | None) -> tuple[str, dict[str, Any] | None]:
    """What a worker records about where it trains: ``(device, gpu)``, e.g. ``("cuda:0", {"index": 2, "name":
    "NVIDIA H200", "memory_bytes": …})`` (``index`` as the host numbers the GPU) or ``("cpu", None)``.

    ``device`` is the worker's ``--device`` (None or ``auto``: CUDA when there is one); a spec's own device may
    still differ per study.
    """
    fake = os.environ.get(FAKE_GPUS_ENV)
    wanted = device or "auto"
    if wanted == "cpu":
        return "cpu", None
    local = int(wanted.partition(":")[2] or 0) if wanted.startswith("cuda") else 0
    visible = _visible_indices()
    if fake is not None:
        gpus = _fake_gpus(fake)
        host = visible[local] if visible is not None and local < len(visible) else local
        return (f"cuda:{local}", gpus[host].record()) if host < len(gpus) else ("cpu", None)
    import torch

    if not torch.cuda.is_available() or local >= torch.cuda.device_count():
        return "cpu", None
    host = visible[local] if visible is not None and local < len(visible) else local
    return f"cuda:{local}", _torch_gpu(torch, local, host).record()
