"""The one skeleton under every worker: hold a lease while the work trains, then finish it, give it back, or drop it.

A trial (``tuner.execution.trials``) and a confirmation or reference-arm run (``tuner.execution.runs``) live
alike: claimed from the store (exactly once, see ``storage``), kept alive by a heartbeat thread while they
train, stopped at the next check once the worker shuts down or the lease is lost, and concluded in one place:
a result or a failure is written, a stopped piece of work (shutdown, paused study, store outage) goes back to
the queue, and after a lost lease nothing is written (another worker owns it now). A worker that dies without
a word stops heartbeating; its lease expires and the next claim requeues the work with ``attempt + 1``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from storage import LeaseLost, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

Result = TypeVar("Result")


class LeaseAborted(Exception):
    """The leased work must stop now: the worker is shutting down, its lease was lost, or its study was paused;
    it goes back to the queue (unless the lease was lost: then it is another worker's)."""


class Heartbeat(threading.Thread):
    """Calls ``renew`` every ``every_s`` seconds until ``done`` is set.

    ``renew`` returns ``False`` once the lease is gone (expired and handed to another worker): then ``lost`` is
    set and the thread ends, so the training loop stops at its next check. A database blip is logged and retried
    until the lease runs out.
    """

    def __init__(self, renew: Callable[[], bool], every_s: float, lost: threading.Event, what: str):
        super().__init__(daemon=True, name=f"heartbeat {what}")
        self.renew, self.every_s, self.lost, self.what = renew, every_s, lost, what
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every_s):
            try:
                if not self.renew():
                    self.lost.set()
                    return
            except StoreError as exc:
                logger.warning("heartbeat of %s failed: %s", self.what, exc)


class Lease(ABC, Generic[Result]):
    """One claimed piece of work, heartbeating from construction until it is concluded.

    A subclass says how its lease is renewed and how its outcome is written; it sets what ``renew`` needs
    before calling ``Lease.__init__``, which starts the heartbeat.

    Args:
        stop: the worker's shutdown flag (SIGTERM).
        heartbeat_s: seconds between two renewals.
        what: the work, for log lines ("trial 3 of digits").
    """

    def __init__(self, stop: threading.Event, heartbeat_s: float, what: str):
        self.stop, self.what = stop, what
        self.lost = threading.Event()
        self._beat = Heartbeat(self.renew, heartbeat_s, self.lost, what)
        self._beat.start()

    @abstractmethod
    def renew(self) -> bool:
        """Extend the lease; False once it is no longer ours."""

    @abstractmethod
    def give_back(self, why: Exception) -> None:
        """Put the work back in the queue (the lease is still ours)."""

    @abstractmethod
    def fail(self, reason: str, trace: str) -> str | None:
        """Record the work as failed with ``reason`` and ``trace``; the state written, or None."""

    @abstractmethod
    def finish(self, result: Result) -> str | None:
        """Record the work's result; the state written, or None."""

    def check(self) -> None:
        """Raise ``LeaseAborted`` if the work must stop now: its lease was lost, or the worker is shutting down."""
        if self.lost.is_set():
            raise LeaseAborted("lease lost")
        if self.stop.is_set():
            raise LeaseAborted("shutting down")

    def end(self) -> None:
        """Stop heartbeating: the work is over (what is written next ends the lease)."""
        self._beat.done.set()

    def conclude(self, outcome: Result | Exception) -> str | None:
        """Report how the work ended: a stopped one (``LeaseAborted``) or a store outage gives it back to the
        queue; after a lost lease nothing is written; any other error fails it with its reason and traceback
        (a bug or a broken workload: don't retry the same thing forever). Returns the state written, or None."""
        self.end()
        if isinstance(outcome, LeaseAborted | StoreUnavailable):  # not the work's fault: run it again
            if not self.lost.is_set():
                self.give_back(outcome)
            return None
        if isinstance(outcome, LeaseLost):  # our lease expired (e.g. a long stall): another worker owns it now
            logger.warning("%s", outcome)
            return None
        if isinstance(outcome, Exception):
            logger.error("%s failed", self.what, exc_info=outcome)
            reason = f"{type(outcome).__name__}: {outcome}"[:2000]
            return self.fail(reason, "".join(traceback.format_exception(outcome))[-4000:])
        return self.finish(outcome)
