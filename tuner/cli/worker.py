"""``auxtune worker``: one worker process that pulls trials (and confirmation runs) of running studies from the store.

It is also the process ``auxtune run``, ``serve`` and ``confirm`` start for their local workers
(``tuner.execution.local`` spawns ``python -m tuner.cli worker``). SIGTERM or SIGINT stops it at the next epoch
boundary, its running trial given back to the queue. Exit codes: 0 done or stopped, 2 bad input or a store that
cannot be opened, 3 the store failed for longer than a worker waits out an outage.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from tuner.cli.common import check_threads, fail, open_store
from tuner.cli.options import (
    LEASE_TIMEOUT_S,
    DbOption,
    DeviceOption,
    ForeverOption,
    LeaseTimeoutOption,
    PopulationOption,
    StudiesOption,
    ThreadsOption,
)

logger = logging.getLogger(__name__)

EXIT_STORE_OUTAGE = 3


def _stop_when_orphaned(parent: int, stop: threading.Event, every_s: float = 1.0) -> None:
    """Set ``stop`` once ``parent`` is no longer this process's parent (it died, even by SIGKILL).

    Local workers run in their own session (Ctrl-C in a terminal reaches only ``auxtune run``, which stops them in
    order), so nothing else would end them if their ``auxtune serve``/``run`` died: they would poll forever.
    """
    while not stop.wait(every_s):
        if os.getppid() != parent:
            logger.warning("the process that started this worker (pid %d) is gone: stopping", parent)
            stop.set()


def worker(
    db: DbOption = None,
    study: StudiesOption = None,
    device: DeviceOption = None,
    forever: ForeverOption = True,
    population: PopulationOption = None,
    threads: ThreadsOption = None,
    lease_timeout: LeaseTimeoutOption = LEASE_TIMEOUT_S,
    heartbeat: Annotated[float, typer.Option(help="seconds between the heartbeats that renew a trial's lease")] = 5.0,
    max_attempts: Annotated[int, typer.Option(help="attempts a trial gets before it fails for good")] = 3,
    epoch_flush: Annotated[float, typer.Option(
        min=0.0, help="seconds between writes of a trial's epochs to the store (0: every epoch)")] = 1.0,
    stream: Annotated[int | None, typer.Option(
        help="sampler seed stream (default: derived from the worker id, so distinct per worker)")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        help="where uploaded data sets are cached, fetched from the store by sha256 (default: $AUXTUNE_CACHE_DIR, "
             "else ~/.cache/auxtune/datasets)")] = None,
    parent: Annotated[int | None, typer.Option(
        hidden=True, help="stop (as on SIGTERM) once the process with this pid is gone (auxtune run/serve set it)")
    ] = None,
) -> None:
    """Run one worker: pull trials of running studies from the store until stopped (SIGTERM-safe)."""
    from storage import StoreError
    from tuner.execution.worker import Worker, WorkerConfig, setup_worker_process

    setup_worker_process()
    check_threads(threads)  # a bad count is refused before the store is opened
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if parent is not None:
        threading.Thread(target=_stop_when_orphaned, args=(parent, stop), daemon=True).start()
    config = WorkerConfig(lease_timeout_s=lease_timeout, heartbeat_s=heartbeat, max_attempts=max_attempts,
                          device=device, population=population, epoch_flush_s=epoch_flush, threads=threads,
                          cache_dir=cache_dir)
    store = open_store(db)
    try:
        Worker(store, config=config, stop=stop, stream=stream).run(study or None, exit_when_idle=not forever)
    except StoreError as exc:  # the store failed for config.store_outage_s in a row
        raise fail([escape(str(exc))], EXIT_STORE_OUTAGE) from None
    finally:
        store.close()
