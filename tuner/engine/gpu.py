"""What a trial on a GPU needs beyond the loop: out-of-memory as a trial's outcome, and the cuDNN settings.

Out of memory: a CUDA out-of-memory error (``torch.cuda.OutOfMemoryError``, or a ``RuntimeError`` saying "out of
memory", as older kernels raise it) is the trial's fault, not the worker's: the worker fails THAT trial with a
reason naming its batch size and device (:func:`out_of_memory`), frees what the trial held (:func:`free_memory`:
the traceback's frames cleared, ``gc.collect()``, ``torch.cuda.empty_cache()``) and takes the next trial.

Determinism: ``training.deterministic: true`` turns on ``torch.use_deterministic_algorithms`` (``warn_only``: an op
without a deterministic kernel, e.g. adaptive pooling's backward on CUDA, warns instead of failing the trial),
``torch.backends.cudnn.deterministic`` and turns ``cudnn.benchmark`` off; ``false`` (the default) turns the first two
off again and leaves ``benchmark`` as the process has it. :func:`apply_determinism` runs at the start of every trial
(one process trains trials of several studies in turn); each stored trial records the flags it trained with
(:func:`backend_settings`, as ``result["cudnn"]``, beside ``torch_threads``), on the CPU as well.
"""

from __future__ import annotations

import gc
import os
import traceback
from typing import TypeVar

import torch

Outcome = TypeVar("Outcome")

#: cuBLAS needs this workspace setting for deterministic matmuls (CUDA ≥ 10.2); set only if the user has not.
CUBLAS_WORKSPACE = ":4096:8"


class TrialOutOfMemory(Exception):
    """A trial ran out of device memory; its message names the batch size, the device and what to lower."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error: CUDA's (or another accelerator's), or the CPU allocator's."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def device_name(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200)``, or ``cpu``."""
    if device.type == "cuda" and torch.cuda.is_available():
        try:
            return f"{device} ({torch.cuda.get_device_name(device)})"
        except Exception:  # a fake or lost device: its name alone
            return str(device)
    return str(device)


def out_of_memory(exc: BaseException, batch_size: int, device: torch.device, members: int = 1) -> TrialOutOfMemory:
    """The outcome to record for a trial that ran out of memory with ``exc``: a :class:`TrialOutOfMemory` naming the
    batch size and device. The frames of ``exc``'s traceback are cleared, so the trial's tensors can be freed
    (call :func:`free_memory` once ``exc`` is dropped)."""
    first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    together = f" with {members} trials trained together (population)" if members > 1 else ""
    if exc.__traceback__ is not None:
        traceback.clear_frames(exc.__traceback__)
    return TrialOutOfMemory(
        f"out of memory on {device_name(device)} at training.batch_size {batch_size}{together}: lower "
        f"training.batch_size{' or population.size' if members > 1 else ''} (or training.hidden), or run on a GPU "
        f"with more memory ({type(exc).__name__}: {first})")


def free_memory(device: torch.device | str | None = None) -> None:
    """Collect the garbage a failed trial left and give cached CUDA blocks back (when CUDA is in use)."""
    gc.collect()
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.empty_cache()


def as_outcome(outcome: Outcome, batch_size: int, device: torch.device, members: int = 1
               ) -> Outcome | TrialOutOfMemory:
    """How a trial or run that ended with ``outcome`` is recorded: ``outcome`` itself, or for an out-of-memory
    error its :class:`TrialOutOfMemory` (``out_of_memory``), once what it held is freed (``free_memory``)."""
    if not isinstance(outcome, BaseException) or not is_out_of_memory(outcome):
        return outcome
    recorded = out_of_memory(outcome, batch_size, device, members)
    del outcome  # the error's frames are cleared; let go of the error too before collecting
    free_memory(device)
    return recorded


def apply_determinism(deterministic: bool) -> None:
    """Set torch's determinism flags for the trial about to train (see the module docstring)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    if torch.are_deterministic_algorithms_enabled() != deterministic:
        torch.use_deterministic_algorithms(deterministic, warn_only=True)


def backend_settings() -> dict[str, bool]:
    """The determinism flags this process trains with now: what each stored trial records as ``cudnn``."""
    return {"benchmark": bool(torch.backends.cudnn.benchmark),
            "deterministic": bool(torch.backends.cudnn.deterministic),
            "deterministic_algorithms": bool(torch.are_deterministic_algorithms_enabled())}
