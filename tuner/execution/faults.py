"""What a worker does when a study cannot be built on it, or when the store stops answering for a while.

Neither may stop the worker (issue #14). A study whose stored spec no longer parses, whose backend, sampler or
workload cannot be built here (an unknown plugin workload, a parameter this version lacks, a seed the sampler
refuses) fails with the reason in its ``status_reason``, and the worker goes on with the other studies: before,
the error escaped the loop and every worker that looked at the study died on it. A store outage is waited out
(each call is retried, see ``storage.retry``; the loop backs off on top of that) up to a bound, and a trial that
trained fine but could not be reported goes back to the queue instead of being failed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from storage import Claim, LeaseLost, Store, StoreError, StoreUnavailable, StudyRecord
from tuner.engine.gpu import backend_settings
from tuner.engine.threads import threads_in_use

logger = logging.getLogger(__name__)

#: How long the store may fail without a break before a worker gives up (seconds).
DEFAULT_OUTAGE_S = 600.0


def worker_stream(worker_id: str) -> int:
    """The sampler seed stream of a worker started without ``--stream``: a hash of its id (31 bits).

    Workers started by hand or as compose replicas all used stream 0, so their seeded samplers proposed the
    same λ in the same order; distinct ids give distinct streams (the backend adds it to the spec's seed).
    """
    return int.from_bytes(hashlib.sha256(worker_id.encode()).digest()[:4], "big") >> 1


def fail_study(store: Store, study: StudyRecord, worker_id: str, what: str, exc: BaseException) -> str:
    """Fail ``study`` (if still queued or running) because ``what`` went wrong on this worker; the reason."""
    reason = f"{what} on worker {worker_id}: {type(exc).__name__}: {exc}"[:4000]
    logger.error("study %s failed: %s", study.name, reason, exc_info=exc)
    store.transition_study(study.id, "failed", ("queued", "running"), reason=reason)
    return reason


def is_store_fault(exc: BaseException) -> bool:
    """Whether ``exc`` came from the store (an outage, a lost lease) rather than from the study itself."""
    return isinstance(exc, StoreError)


class StoreOutage:
    """Backs the worker loop off while store calls keep failing; gives up after ``limit_s`` without a success."""

    def __init__(self, limit_s: float = DEFAULT_OUTAGE_S, first_s: float = 0.2, max_s: float = 5.0):
        self.limit_s, self.first_s, self.max_s = limit_s, first_s, max_s
        self._since: float | None = None
        self._pause = first_s

    def ok(self) -> None:
        """A loop turn went through: the outage, if any, is over."""
        if self._since is not None:
            logger.warning("the store answers again after %.1f s", time.monotonic() - self._since)
        self._since, self._pause = None, self.first_s

    def failed(self, exc: StoreError, stop: threading.Event) -> None:
        """Wait before the next turn; re-raise ``exc`` once the store has failed for ``limit_s`` in a row."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._since >= self.limit_s:
            logger.error("the store has failed for %.0f s in a row: giving up", now - self._since)
            raise exc
        logger.warning("store error in the worker loop (retrying in %.1f s): %s", self._pause, exc)
        stop.wait(self._pause)
        self._pause = min(self._pause * 2, self.max_s)


def give_back(store: Store, claim: Claim, why: Exception) -> None:
    """Give a trial that did not end on its own (shutdown, a store outage while it trained) back to the queue.

    Called only while the lease is still ours (``tuner.execution.lease``); if the store still fails, the lease
    runs out and the next claim requeues the trial with ``attempt + 1``.
    """
    try:
        if store.release_trial(claim):
            logger.info("trial %d of %s given back to the queue (%s: %s)", claim.number, claim.study_name,
                        type(why).__name__, why)
    except StoreUnavailable as exc:
        logger.warning("trial %d of %s could not be given back (%s); its lease will expire", claim.number,
                       claim.study_name, exc)


def finish(store: Store, claim: Claim, state: str, value: float | list[float] | None, result: dict,
           reason: str) -> bool:
    """Write a trial's outcome; False if it was not written (lease lost, or the store failed for good).

    A result the store could not take is not turned into a failed trial: the lease runs out and the trial is
    trained again (issue #14: a database restart left trials ``failed`` forever, and killed the worker).
    """
    # results compare only at the same thread count, and on a GPU only with the same cuDNN/determinism flags
    result = {**result, "torch_threads": threads_in_use(), "cudnn": backend_settings()}
    try:
        store.finish_trial(claim, state, value, result, reason)
    except LeaseLost as exc:
        logger.warning("%s", exc)
        return False
    except StoreUnavailable as exc:
        logger.error("trial %d of %s: its %s result could not be written (%s); it will run again", claim.number,
                     claim.study_name, state, exc)
        return False
    return True
