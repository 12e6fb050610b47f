"""Whether a registered worker is alive, and what to tell a user whose study no live worker can take.

A heartbeat alone said a SIGKILLed worker was alive for up to ``worker_alive_s`` (a minute by default): a worker
counts as alive only if it beat within that window AND, for a worker on this host, its process still exists (a
zombie, killed but not yet reaped, does not). A worker on another host is judged by its heartbeat alone. The API
(``/workers``, ``/metrics``, ``GET /studies/{id}``, the dashboard) and ``auxtune status`` all ask here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage import WorkerRecord

#: Statuses of a study that waits for a worker to take its trials.
WAITING_STATUSES = ("queued", "running")


def pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie (exited, not yet reaped)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS), or it exited just now
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def worker_alive(worker: WorkerRecord, alive_s: float, now: datetime | None = None, host: str | None = None) -> bool:
    """A heartbeat within ``alive_s`` seconds and, for a worker on ``host`` (default: this one), a live pid."""
    now = now or datetime.now(UTC)
    if (now - worker.last_heartbeat_at).total_seconds() > alive_s:
        return False
    return worker.host != (host or socket.gethostname()) or pid_running(worker.pid)


def count_alive(workers: Iterable[WorkerRecord], alive_s: float) -> int:
    """How many of ``workers`` are alive (see :func:`worker_alive`)."""
    now, host = datetime.now(UTC), socket.gethostname()
    return sum(worker_alive(w, alive_s, now, host) for w in workers)


def no_worker_warning(status: str, alive: int) -> str | None:
    """What to tell about a study in ``status`` when ``alive`` workers are alive: ``None`` unless it waits for a
    worker and none is alive to take it."""
    if status not in WAITING_STATUSES or alive > 0:
        return None
    return (f"no live worker can take this {status} study: start one (`auxtune worker --db <this store>`) or run "
            "the service with embedded workers (`auxtune serve --workers 1`)")


def device_label(device: str, gpu: dict[str, Any] | None) -> str:
    """One line for a worker's device: ``GPU 2 (NVIDIA H200, 140 GiB) as cuda:0`` (the host's index), or ``cpu``."""
    if not gpu:
        return device
    gib = int(gpu.get("memory_bytes") or 0) / (1 << 30)
    return f"GPU {gpu.get('index')} ({gpu.get('name')}, {gib:.0f} GiB) as {device}"
