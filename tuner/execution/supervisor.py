"""``auxtune serve``'s embedded workers, kept running: a worker that exits is restarted, with backoff.

Before, a SIGKILLed (or crashed) embedded worker stayed dead until the service was restarted, and its trial
waited a whole lease timeout before another worker could take it. The supervisor watches each worker process
from a thread of the serving process; when one exits it logs why (exit code or signal), ends the leases it held
in the store at once (``Store.expire_worker_leases``: the next claim requeues its trial with ``attempt + 1``)
and starts a new one in its slot after a delay: 1 s, doubled on each death of a worker that ran less than
``STABLE_S``, at most 60 s; a worker that ran ``STABLE_S`` or longer starts the count again at 1 s. Reaping the
process at once also lets ``/workers`` see its pid gone (``tuner.execution.liveness``).
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from storage import Store, StoreError
from tuner.execution.local import start_worker, stop_workers

logger = logging.getLogger(__name__)

#: The first restart delay of a worker that died, in seconds, and the most it grows to (doubling each time).
FIRST_BACKOFF_S, MAX_BACKOFF_S = 1.0, 60.0
#: A worker that ran this long before it died is restarted after FIRST_BACKOFF_S again (it was not crash-looping).
STABLE_S = 60.0
#: How often the supervisor looks at its workers.
WATCH_S = 0.2


def exit_reason(returncode: int) -> str:
    """``exited with code 2`` or ``was killed by SIGKILL``, for the log line."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class _Slot:
    """One embedded worker: its sampler seed stream, its process, and when to start its next one; ``gpu``: the host
    GPU it is placed on, kept by every restart (``tuner.execution.placement``)."""

    stream: int
    proc: subprocess.Popen | None
    started: float
    gpu: int | None = None
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None


class WorkerSupervisor:
    """Starts ``n`` worker processes (``tuner.execution.local.start_worker``) and restarts each one that exits until
    :meth:`stop`; use it as a context manager around the service.

    ``gpus``: one worker per entry instead, the i-th placed on host GPU ``gpus[i]`` (and restarted there).
    ``seeded``: worker i gets sampler seed stream i (reproducible on one machine); False: each its own, from its
    worker id (workers started on several machines must not propose the same λ).
    """

    def __init__(self, url: str, n: int, *args: str, gpus: Sequence[int] | None = None, seeded: bool = True):
        self.url, self.args, self.seeded = url, args, seeded
        now = time.monotonic()
        places: list[int | None] = list(gpus) if gpus is not None else [None] * n
        self._slots = [_Slot(i, None, now, gpu) for i, gpu in enumerate(places)]
        for slot in self._slots:
            slot.proc = self._start(slot)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)
        if self._slots:
            self._thread.start()

    def __enter__(self) -> WorkerSupervisor:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def procs(self) -> list[subprocess.Popen]:
        """The worker processes running now (a slot waiting out its backoff has none)."""
        with self._lock:
            return [s.proc for s in self._slots if s.proc is not None]

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop restarting, then stop the workers (SIGTERM: each gives its running trial back to the queue)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        stop_workers(self.procs, timeout_s=timeout_s)
        if self._store is not None:
            self._store.close()

    def _start(self, slot: _Slot) -> subprocess.Popen:
        return start_worker(self.url, slot.stream if self.seeded else None, *self.args, gpu=slot.gpu)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_S):
            for slot in self._slots:
                try:
                    self._tend(slot)
                except Exception:  # the supervisor must outlive any one failure (a store down, a fork failing)
                    logger.exception("supervising embedded worker %d failed; trying again", slot.stream)

    def _tend(self, slot: _Slot) -> None:
        now = time.monotonic()
        if slot.proc is None:
            if slot.restart_at is not None and now >= slot.restart_at and not self._stop.is_set():
                proc = self._start(slot)
                with self._lock:
                    slot.proc, slot.started, slot.restart_at = proc, now, None
                logger.warning("embedded worker %d restarted (pid %d)", slot.stream, proc.pid)
            return
        code = slot.proc.poll()  # reaps it: its pid is gone for /workers at once
        if code is None or self._stop.is_set():
            return
        pid, ran = slot.proc.pid, now - slot.started
        if ran >= STABLE_S:
            slot.backoff_s = FIRST_BACKOFF_S
        with self._lock:
            slot.proc, slot.restart_at = None, now + slot.backoff_s
        logger.warning("embedded worker %d (pid %d) %s after %.0f s; restarting it in %.0f s", slot.stream, pid,
                       exit_reason(code), ran, slot.backoff_s)
        slot.backoff_s = min(MAX_BACKOFF_S, slot.backoff_s * 2)
        self._release(pid)

    def _release(self, pid: int) -> None:
        """End the leases of the store's worker that had this pid on this host, so its trial is requeued now."""
        try:
            if self._store is None:
                self._store = Store(self.url)
            host = socket.gethostname()
            gone = [w for w in self._store.workers() if w.host == host and w.pid == pid]
            for worker in gone:
                if held := self._store.expire_worker_leases(worker.id):
                    logger.warning("worker %s: %d lease(s) ended for requeueing", worker.id, held)
        except StoreError as exc:  # its leases then expire on their own, a lease timeout later
            logger.warning("could not end the leases of the worker with pid %d: %s", pid, exc)
