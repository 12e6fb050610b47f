"""``auxtune run``: a whole study on this machine, N worker processes sharing the store.

The runner creates the study (or resumes it by name when the spec is the same), starts N real worker processes
(``python -m tuner.cli worker``; ``run_workers``), reports progress from the store through a callback (the
CLI draws it), and on Ctrl-C asks the workers to stop: each gives its running trial back to the queue, so a
rerun resumes where this one stopped. With one worker the worker runs in this process instead (same ``Worker``,
same store, same Ctrl-C behaviour): a second process would only import torch a second time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from storage import DEFAULT_LEASE_TIMEOUT_S, BestTrial, ParetoSize, Store, StudyRecord
from tuner.execution.placement import gpu_environment
from tuner.spec.transfer import lambda_params


@dataclass
class Progress:
    done: int
    total: int
    running: int
    queued: int
    failed: int
    best_value: float | None
    best_lambdas: dict[str, float] | None
    #: A multi-objective study's front so far (its answer; ``best_*`` are its primary objective's); else None.
    pareto: ParetoSize | None = None


class ProgressReader:
    """The progress of one study, read from the store each time it is called.

    It counts trials by state every call, but reads the best trial (and a multi-objective study's front size)
    again only once more trials have finished: the runner asks every poll period while training runs in the same
    process, so each read takes time from it.
    """

    def __init__(self, store: Store, study: StudyRecord):
        self.store, self.study = store, study
        self._finished: int | None = None
        self._best: BestTrial | None = None
        self._pareto: ParetoSize | None = None

    def __call__(self) -> Progress:
        counts = self.store.counts_by_state(self.study.id)
        finished = sum(counts.get(s, 0) for s in ("complete", "pruned", "failed", "failed_sanity"))
        if finished != self._finished:
            self._best, self._finished = self.store.best_trial(self.study.id), finished
            if len(self.study.directions) > 1:
                self._pareto = self.store.pareto_sizes([self.study.id]).get(self.study.id)
        best = self._best
        return Progress(done=finished, total=self.study.n_trials, running=counts.get("running", 0),
                        queued=counts.get("queued", 0),
                        failed=counts.get("failed", 0) + counts.get("failed_sanity", 0),
                        best_value=best.value if best else None,
                        best_lambdas=lambda_params(best.params) if best else None, pareto=self._pareto)


def start_worker(url: str, stream: int | None, *args: str, gpu: int | None = None) -> subprocess.Popen:
    """Start one local worker process (``python -m tuner.cli worker ... ARGS``) on the store at ``url`` with sampler
    seed stream ``stream`` (None: from its worker id, distinct across machines); it stops if this process dies, and
    once it finds no work unless ``ARGS`` say ``--forever``. Its torch threads follow ``tuner.engine.threads``
    (``ARGS``' ``--threads``, else the inherited ``$AUXTUNE_THREADS``, else 1): a share of ``cpu_count`` per worker
    oversubscribed a loaded machine and made results depend on the machine's core count. ``gpu``: the host GPU it
    is placed on (``CUDA_VISIBLE_DEVICES``; it sees it as ``cuda:0``, see ``tuner.execution.placement``)."""
    seed = [] if stream is None else ["--stream", str(stream)]
    env = None if gpu is None else gpu_environment(gpu)
    return subprocess.Popen([sys.executable, "-m", "tuner.cli", "worker", "--db", url, *seed,
                             "--parent", str(os.getpid()), "--no-forever", *args], start_new_session=True, env=env)


def start_workers(url: str, n: int, *args: str, gpus: Sequence[int] | None = None,
                  seeded: bool = True) -> list[subprocess.Popen]:
    """Start ``n`` local worker processes (see :func:`start_worker`), each with its own sampler seed stream (``i``;
    not ``seeded``: from its worker id); ``gpus``: one worker per entry instead, the i-th on host GPU ``gpus[i]``."""
    places: list[int | None] = list(gpus) if gpus is not None else [None] * n
    return [start_worker(url, i if seeded else None, *args, gpu=g) for i, g in enumerate(places)]


def threads_args(threads: int | None) -> list[str]:
    """A worker process's ``--threads`` for ``threads`` (none for the policy's default, decided there)."""
    return [] if threads is None else ["--threads", str(threads)]


def stop_workers(procs: list[subprocess.Popen], timeout_s: float = 120.0) -> None:
    """SIGTERM each worker process (it gives its running trial back to the queue and exits), then wait;
    a worker still there after ``timeout_s`` is killed (its lease expires and the trial is requeued)."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()


def run_workers(url: str, study: str, workers: int, on_poll: Callable[[], None], *,
                lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S, heartbeat_s: float | None = None,
                threads: int | None = None, poll_s: float = 1.0, gpus: Sequence[int] | None = None) -> None:
    """Start ``workers`` local worker processes on the study named ``study`` and wait until all have exited.

    The workers run whatever the study has queued: its trials, then its confirmation and reference-arm runs.
    ``on_poll`` is called every ``poll_s`` seconds while they work (to read and show progress; the caller
    reads what it needs from the store). ``heartbeat_s``/``threads``: the workers' ``--heartbeat``/``--threads``
    (None: their default). ``gpus``: one worker per entry instead, placed on that host GPU (``start_workers``).
    KeyboardInterrupt stops the workers cleanly (each gives its running trial or run back
    to the queue) and re-raises.
    """
    args = ["--study", study, "--lease-timeout", str(lease_timeout_s)]
    if heartbeat_s is not None:
        args += ["--heartbeat", str(heartbeat_s)]
    procs = start_workers(url, workers, *args, *threads_args(threads), gpus=gpus)
    try:
        while alive := [p for p in procs if p.poll() is None]:
            on_poll()
            try:  # wakes as soon as a worker exits: no poll period lost at the end of the study
                alive[0].wait(timeout=poll_s)
            except subprocess.TimeoutExpired:
                pass
    except KeyboardInterrupt:
        stop_workers(procs)
        raise


def run_study(store: Store, study: StudyRecord, workers: int, on_progress: Callable[[Progress], None],
              lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S, heartbeat_s: float = 5.0, poll_s: float = 1.0,
              threads: int | None = None) -> Progress:
    """Run ``study`` to its budget with ``workers`` local worker processes; returns the final progress.

    ``threads``: torch CPU threads per worker (None: the policy's default, see ``tuner.engine.threads``).

    ``on_progress`` gets the progress every ``poll_s`` seconds, and once more at the end.
    KeyboardInterrupt stops the workers cleanly (their running trials go back to the queue) and re-raises.
    """
    read_progress = ProgressReader(store, study)
    if workers == 1:
        _run_in_this_process(store, study, lambda: on_progress(read_progress()), lease_timeout_s, heartbeat_s,
                             poll_s, threads)
    else:
        run_workers(store.url, study.name, workers, lambda: on_progress(read_progress()),
                    lease_timeout_s=lease_timeout_s, heartbeat_s=heartbeat_s, threads=threads, poll_s=poll_s)
    final = read_progress()
    on_progress(final)
    return final


def _run_in_this_process(store: Store, study: StudyRecord, report_progress: Callable[[], None],
                         lease_timeout_s: float, heartbeat_s: float, poll_s: float, threads: int | None) -> None:
    """One ``Worker`` in this process, progress from a thread; Ctrl-C stops it as SIGINT stops a worker
    process: at the next epoch boundary, its running trial given back to the queue, then KeyboardInterrupt."""
    from tuner.execution.worker import Worker, WorkerConfig  # torch: only once the study is there to run

    stop, finished = threading.Event(), threading.Event()

    def report() -> None:
        while not finished.wait(poll_s):
            report_progress()

    reporter = threading.Thread(target=report, name="progress", daemon=True)
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        reporter.start()
        worker = Worker(store, config=WorkerConfig(lease_timeout_s=lease_timeout_s, heartbeat_s=heartbeat_s,
                                                   threads=threads), stop=stop)
        worker.run([study.name])
    finally:
        signal.signal(signal.SIGINT, previous)
        finished.set()
        reporter.join()
    if stop.is_set():
        raise KeyboardInterrupt
