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

from tuner.cli.common import check_gpus, check_threads, fail, open_store
from tuner.cli.options import (
    LEASE_TIMEOUT_S,
    DbOption,
    DeviceOption,
    ForeverOption,
    GpusOption,
    LeaseTimeoutOption,
    PopulationOption,
    StudiesOption,
    ThreadsOption,
    WorkersPerGpuOption,
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
    gpus: GpusOption = None,
    workers_per_gpu: WorkersPerGpuOption = 1,
) -> None:
    """Run one worker: pull trials of running studies from the store until stopped (SIGTERM-safe). With --gpus: one
    worker process per GPU (times --workers-per-gpu), each seeing only its GPU, until all end or SIGTERM."""
    from storage import StoreError
    from tuner.execution.worker import Worker, WorkerConfig, setup_worker_process

    setup_worker_process()
    check_threads(threads)  # a bad count is refused before the store is opened
    placed = check_gpus(gpus, workers_per_gpu, device)  # no CUDA here: exit 2 at once
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if placed is not None:
        if stream is not None:
            raise fail(["--stream: leave it out with --gpus (each placed worker derives its own from its id)"])
        args = [*(a for name in study or [] for a in ("--study", name)), "--lease-timeout", str(lease_timeout),
                "--heartbeat", str(heartbeat), "--max-attempts", str(max_attempts), "--epoch-flush", str(epoch_flush),
                *(["--population", str(population)] if population else []),
                *(["--threads", str(threads)] if threads else []), "--forever" if forever else "--no-forever"]
        raise typer.Exit(_run_placed(db, placed, args, forever, stop))
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


def _run_placed(db: str | None, gpus: list[int], args: list[str], forever: bool, stop: threading.Event) -> int:
    """One worker process per entry of ``gpus`` (``tuner.execution.placement``) until SIGTERM, or until all have
    ended (``--no-forever``); forever, one that dies is restarted on its GPU. Returns the first failing exit code."""
    from storage import resolve_url
    from tuner.execution.local import start_workers, stop_workers
    from tuner.execution.supervisor import WorkerSupervisor

    url = resolve_url(db).render_as_string(hide_password=False)
    open_store(url).close()  # one clear line now if the database cannot be opened
    if forever:
        with WorkerSupervisor(url, 0, *args, gpus=gpus, seeded=False):
            stop.wait()
        return 0
    procs = start_workers(url, 0, *args, gpus=gpus, seeded=False)
    while not stop.is_set() and any(p.poll() is None for p in procs):
        stop.wait(0.5)
    stop_workers(procs)
    return next((p.returncode for p in procs if p.returncode), 0)
