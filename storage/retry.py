"""Riding out a transient store outage: a connection the server dropped, a database that restarts.

A pooled connection the server dropped (``pg_terminate_backend``, a restart, a proxy) fails its next statement
once with ``StoreUnavailable``; SQLAlchemy then throws the pool's connections away, so the same call a moment
later usually succeeds on a new one. ``call_with_retry`` repeats a call with exponential backoff for a bounded
time; ``RetryingStore`` does so for every method of a ``Store``. Only ``StoreUnavailable`` is retried: a bad
statement, a missing study or a lost lease are answers, not outages.

Every store call a worker makes is safe to repeat: lease writes are conditional on the lease and replace what
they wrote, ``finish_trial`` accepts its own result a second time, ``release_trial`` of a trial already given
back answers ``False``, and a claim that broke half-way is repaired by the next claim (``ClaimOps``).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from storage.errors import StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: How long one store call is retried before its ``StoreUnavailable`` is raised (seconds).
DEFAULT_RETRY_BUDGET_S = 20.0
#: The first pause between tries (doubled each time, up to ``MAX_PAUSE_S``).
FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 2.0


def call_with_retry(fn: Callable[..., T], *args: Any, budget_s: float = DEFAULT_RETRY_BUDGET_S,
                    what: str | None = None, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, tried again with backoff while it raises ``StoreUnavailable``.

    The first try always runs; later ones only while ``budget_s`` seconds have not passed since it started.
    The last ``StoreUnavailable`` is raised once the budget is spent.
    """
    deadline = time.monotonic() + budget_s
    pause = FIRST_PAUSE_S
    while True:
        try:
            return fn(*args, **kwargs)
        except StoreUnavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            wait = min(pause, left)
            logger.warning("%s: %s; trying again in %.1f s", what or getattr(fn, "__name__", "store call"), exc,
                           wait)
            time.sleep(wait)
            pause = min(pause * 2, MAX_PAUSE_S)


class RetryingStore:
    """A ``Store`` whose every method call is retried through a transient outage (see ``call_with_retry``).

    Attributes that are not methods (``url``, ``safe_url``) are passed through; ``close`` is not retried.
    Workers hold one of these, so a dropped connection in a claim, a heartbeat, an epoch write or a finish
    costs a retry, not the trial or the worker.
    """

    _NOT_RETRIED = frozenset({"close", "session", "__enter__", "__exit__"})

    def __init__(self, store: Any, budget_s: float = DEFAULT_RETRY_BUDGET_S) -> None:
        self._store = store.unwrapped if isinstance(store, RetryingStore) else store
        self.budget_s = budget_s

    @property
    def unwrapped(self) -> Any:
        """The ``Store`` underneath."""
        return self._store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or name in self._NOT_RETRIED or name.startswith("_"):
            return attr

        @functools.wraps(attr)
        def retried(*args: Any, **kwargs: Any) -> Any:
            return call_with_retry(attr, *args, budget_s=self.budget_s, what=name, **kwargs)

        return retried
