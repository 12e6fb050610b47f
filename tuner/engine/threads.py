"""One CPU-thread policy for every worker: 1 torch thread per worker unless ``--threads N`` or ``$AUXTUNE_THREADS``.

Why one thread by default: a trial's float reductions (matmul, conv, sums over a batch) are split across torch's
intra-op threads, and the split changes the order of the additions. The same trial (same spec, λ and seed) gave
val 0.3243 at torch's default thread count and 0.2703 at one; and N workers each at ``cpu_count // N`` threads
ran 15× slower on a loaded 2-core machine than at 1 (oversubscription). One thread per worker, many workers, is
both the faster and the reproducible layout for the small nets auxtune tunes.

What reproducibility holds (CPU):

- same thread count, same spec, λ and seed: the same trial result on the same machine and torch build, whoever
  runs it (``auxtune run``'s in-process worker, its worker processes, ``auxtune serve``'s embedded workers,
  ``auxtune worker`` started by hand, a population worker) and ``auxtune trial``;
- another thread count: the rounding of the reductions differs from the first step on and training can amplify
  it (0.3243 vs 0.2703 above; on ``examples/synthetic.yaml`` seed 0 both counts gave 0.626), so results are
  bit-for-bit comparable only between trials recorded with the same ``torch_threads`` (each trial's stored
  result carries it);
- on CUDA the thread count only affects the CPU side (data loading); GPU kernels have their own nondeterminism.

The policy is applied in one place, :func:`apply_thread_policy`, which ``Worker.run`` (every kind of worker) and
``auxtune trial`` call before any training.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

#: Torch CPU threads per worker when neither ``--threads`` nor ``$AUXTUNE_THREADS`` says otherwise.
DEFAULT_THREADS = 1
#: The environment variable that sets the thread count for every worker this process starts.
THREADS_ENV = "AUXTUNE_THREADS"
#: A thread count past this is a typo, not a machine (torch would try to start them all).
MAX_THREADS = 1024


class ThreadsError(ValueError):
    """The thread count (``--threads`` or ``$AUXTUNE_THREADS``) is not a whole number in [1, MAX_THREADS]."""


def thread_count(requested: int | None = None) -> int:
    """The torch CPU threads of a worker: ``requested`` (``--threads``), else ``$AUXTUNE_THREADS``, else 1.

    Raises:
        ThreadsError: the count is not a whole number in [1, MAX_THREADS]; the message names where it came from.
    """
    if requested is not None:
        source, value = "--threads", str(requested)
    else:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if not raw:
            return DEFAULT_THREADS
        source, value = f"${THREADS_ENV}", raw
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THREADS:
        raise ThreadsError(f"{source}: {value!r} is not a thread count; give a whole number from 1 to {MAX_THREADS} "
                           f"(default {DEFAULT_THREADS} per worker)")
    return n


def apply_thread_policy(requested: int | None = None) -> int:
    """Set torch's CPU thread count by the policy (see :func:`thread_count`) and return it."""
    import torch

    n = thread_count(requested)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    logger.info("torch CPU threads: %d", n)
    return n


def threads_in_use() -> int:
    """The torch CPU threads this process trains with now (what a trial's result records as ``torch_threads``)."""
    import torch

    return int(torch.get_num_threads())
