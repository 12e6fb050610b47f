"""Workers as Slurm array jobs (``auxtune launch slurm``), through submitit.

One array task per GPU (``--gpus N``) or per CPU worker (``--workers N``); each task runs the ordinary worker loop
(``tuner.execution.worker.Worker``) against one store, so a Slurm fleet is N more workers meeting the API in the
database.
``--cluster local`` runs the same pickled tasks on this machine with submitit's ``LocalExecutor``: that is how
the launcher is tested, since no Slurm runs on this project's machines.

Signals, as Slurm and submitit send them:

- SIGTERM or SIGINT (``scancel``, the local controller stopping): the worker stops at the next epoch boundary,
  gives its running trial back to the queue (no attempt counted) and the task ends.
- submitit's preemption/timeout signal (``SIGUSR2``, ``$SUBMITIT_PREEMPT_SIGNAL``; Slurm sends it ``--signal-delay``
  seconds before the time limit): the same, and with ``--requeue`` the task is then handed to submitit's own
  checkpoint/requeue path (``scontrol requeue`` on Slurm, a restart under the local controller), which counts the
  timeouts and gives up after ``max_num_timeout``.

The worker does not call submitit's handler from inside the signal: the trial can be given back only from the
worker's loop (``Store.release_trial``), so the handler only sets the stop event and the requeue comes after.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from storage import DEFAULT_LEASE_TIMEOUT_S, Store

CLUSTERS = ("slurm", "local")
#: The array tasks' time limit when ``--time`` is not given (submitit's own default is 5 minutes on Slurm, 2 local).
DEFAULT_TIME_MIN = 60
#: Seconds before the time limit that Slurm sends the preemption/timeout signal: one epoch must fit in it.
DEFAULT_SIGNAL_DELAY_S = 90
DEFAULT_LOG_DIR = Path("auxtune-slurm")
#: A task's job name in ``squeue``.
JOB_NAME = "auxtune-worker"

_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


class LaunchError(ValueError):
    """A launch flag the user can fix: ``str()`` names the flag and the fix."""

    def __init__(self, flag: str, message: str):
        super().__init__(f"{flag}: {message}")
        self.flag = flag


def parse_time(text: str) -> int:
    """Slurm's ``--time`` formats (MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS[:MINUTES[:SECONDS]])
    as whole minutes, rounded up: submitit takes minutes."""
    match = _TIME.match(text.strip())
    if match is None:
        raise LaunchError("--time", f"{text!r} is not a Slurm time; give MINUTES, HH:MM:SS or D-HH:MM, e.g. 90, "
                                    "2:00:00 or 1-12:00")
    found = match.groupdict()
    a, b, c = int(found["a"]), int(found["b"] or 0), int(found["c"] or 0)
    if found["days"] is not None:  # D-H, D-H:M, D-H:M:S
        seconds = int(found["days"]) * 86400 + a * 3600 + b * 60 + c
    elif found["c"] is not None:  # H:M:S
        seconds = a * 3600 + b * 60 + c
    else:  # M or M:S
        seconds = a * 60 + b
    if seconds < 60:
        raise LaunchError("--time", f"{text!r} is under a minute; give at least 1 (minute)")
    return math.ceil(seconds / 60)


def parse_sbatch(items: list[str]) -> dict[str, str]:
    """``--sbatch KEY=VALUE`` items as submitit's ``additional_parameters`` (each one ``#SBATCH --KEY=VALUE``)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
            raise LaunchError("--sbatch", f"{item!r}: expected KEY=VALUE of an sbatch option, e.g. "
                                          "--sbatch account=myproject --sbatch qos=normal")
        out[key.replace("-", "_")] = value
    return out


@dataclass(frozen=True)
class LaunchPlan:
    """What ``auxtune launch slurm`` submits: checked flags, no store opened yet."""

    url: str  #: the store, with its password (each task opens it); shown only through ``safe_url``
    count: int  #: array tasks
    gpus: bool  #: one GPU per task (``--gpus``), else CPU workers (``--workers``)
    cluster: str = "slurm"
    partition: str | None = None
    time_min: int = DEFAULT_TIME_MIN
    signal_delay_s: int = DEFAULT_SIGNAL_DELAY_S
    log_dir: Path = DEFAULT_LOG_DIR
    requeue: bool = False
    studies: tuple[str, ...] = ()
    forever: bool = False
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S
    cpus_per_task: int | None = None
    population: int | None = None
    sbatch: dict[str, str] = field(default_factory=dict)


def plan_launch(*, url: str, gpus: int | None, workers: int | None, cluster: str, is_sqlite: bool,
                time: str | None, signal_delay_s: int, **rest: Any) -> LaunchPlan:
    """Check the flags that need no store and no cluster; raises ``LaunchError`` naming the flag to fix."""
    if gpus is not None and workers is not None:
        raise LaunchError("--gpus/--workers", "give one: --gpus N (one GPU per array task) or --workers N "
                                              "(CPU workers), not both")
    count = gpus if gpus is not None else workers
    if count is None:
        raise LaunchError("--gpus/--workers", "say how many array tasks: --gpus N (one GPU each) or --workers N "
                                              "(CPU workers)")
    if count < 1:
        raise LaunchError("--gpus" if gpus is not None else "--workers", f"{count} tasks: give 1 or more")
    if cluster not in CLUSTERS:
        raise LaunchError("--cluster", f"{cluster!r}: give slurm (sbatch on this cluster) or local (this machine)")
    if cluster == "slurm" and is_sqlite:
        raise LaunchError("--db", "a Slurm job's workers run on other nodes, which cannot share a SQLite file; "
                                  "give a database server they all reach, e.g. --db postgresql://USER@HOST/DB "
                                  "(SQLite works with --cluster local only)")
    time_min = parse_time(time) if time is not None else DEFAULT_TIME_MIN
    if not 0 <= signal_delay_s < time_min * 60:
        raise LaunchError("--signal-delay", f"{signal_delay_s} s must be at least 0 and under the time limit "
                                            f"({time_min * 60} s); lower it or raise --time")
    return LaunchPlan(url=url, count=count, gpus=gpus is not None, cluster=cluster, time_min=time_min,
                      signal_delay_s=signal_delay_s, **rest)


def _preemption_signal() -> signal.Signals:
    """submitit's preemption/timeout signal (``SIGUSR2`` unless ``$SUBMITIT_PREEMPT_SIGNAL`` says otherwise)."""
    return signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG]


def _job_worker_id() -> str | None:
    """``JOBID@HOST-PID`` inside a submitit job (so ``auxtune trials`` names the Slurm task), else None."""
    try:
        job_id = submitit.JobEnvironment().job_id
    except (RuntimeError, KeyError):
        return None
    return f"{job_id}@{socket.gethostname()}-{os.getpid()}"


_Handler = Callable[[int, types.FrameType | None], Any] | int | None


@dataclass
class WorkerTask(submitit.helpers.Checkpointable):
    """One array task: the worker loop on one store, pickled by submitit (by reference to this class)."""

    url: str
    index: int  #: the array index (its sampler stream comes from its worker id, see ``__call__``)
    device: str
    threads: int | None = None  #: torch CPU threads; None: the policy's default (``tuner.engine.threads``)
    studies: tuple[str, ...] = ()
    forever: bool = False
    lease_timeout_s: float = DEFAULT_LEASE_TIMEOUT_S
    population: int | None = None
    requeue: bool = False

    def __call__(self) -> dict[str, Any]:
        from tuner.execution.worker import Worker, WorkerConfig, setup_worker_process

        setup_worker_process(log_level="INFO")
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():  # else every trial (or the study's gate) would fail on it
                raise RuntimeError(f"array task {self.index} sees no GPU (CUDA_VISIBLE_DEVICES="
                                   f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}); ask for GPUs with --gpus on a "
                                   "partition that has them, or use --workers for CPU workers")
        stop, caught = threading.Event(), []
        preempt = _preemption_signal()

        def on_signal(signum: int, _frame: types.FrameType | None) -> None:
            caught.append(signum)
            stop.set()

        previous: dict[int, _Handler] = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, preempt)}
        for sig in previous:
            signal.signal(sig, on_signal)
        try:
            with Store(self.url) as store:
                # stream=None: from the worker's id, not the array index; two launches (or a launch beside
                # hand-started workers) would otherwise propose the same λ in the same order (issue #14).
                worker = Worker(store, worker_id=_job_worker_id(), stop=stop, stream=None,
                                config=WorkerConfig(lease_timeout_s=self.lease_timeout_s, device=self.device,
                                                    population=self.population, threads=self.threads))
                trials = worker.run(list(self.studies) or None, exit_when_idle=not self.forever)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        submitit_handler = previous[preempt]
        if preempt in caught and self.requeue and callable(submitit_handler):
            # The trial is back in the queue: now submitit checkpoints this task (``checkpoint``: the same task
            # again), requeues it and exits; after too many timeouts it ends the job with the reason instead.
            submitit_handler(preempt, None)
        return {"worker": worker.id, "trials": trials,
                "stopped_by": signal.Signals(caught[0]).name if caught else None}


def task_threads(plan: LaunchPlan) -> int | None:
    """Torch threads per task: ``--cpus-per-task`` when given, else the one policy's default (``tuner.engine.threads``:
    ``$AUXTUNE_THREADS``, else 1)."""
    return plan.cpus_per_task


def tasks(plan: LaunchPlan) -> list[WorkerTask]:
    """The array's tasks: task ``i`` serves with sampler stream ``i``; a GPU task sees its one GPU as cuda:0."""
    return [WorkerTask(url=plan.url, index=i, device="cuda:0" if plan.gpus else "cpu", threads=task_threads(plan),
                       studies=plan.studies, forever=plan.forever, lease_timeout_s=plan.lease_timeout_s,
                       population=plan.population, requeue=plan.requeue) for i in range(plan.count)]


def slurm_parameters(plan: LaunchPlan) -> dict[str, Any]:
    """``SlurmExecutor.update_parameters`` for the plan (the array itself comes from ``submit_array``)."""
    extra: dict[str, Any] = {**({"requeue": True} if plan.requeue else {}), **plan.sbatch}
    params: dict[str, Any] = {"job_name": JOB_NAME, "time": plan.time_min, "signal_delay_s": plan.signal_delay_s,
                              "ntasks_per_node": 1, "nodes": 1}
    if plan.partition:
        params["partition"] = plan.partition
    if plan.gpus:
        params["gpus_per_node"] = 1
    if plan.cpus_per_task:
        params["cpus_per_task"] = plan.cpus_per_task
    if extra:
        params["additional_parameters"] = extra
    return params


def check_cluster(plan: LaunchPlan) -> None:
    """Refuse, before anything is opened or written, a plan this machine cannot submit: ``--cluster slurm`` with
    no Slurm installed, ``--gpus N`` on the local cluster with fewer GPUs. Raises ``LaunchError``."""
    if plan.cluster == "slurm" and submitit.SlurmExecutor.affinity() <= 0:
        raise LaunchError("--cluster", "slurm: no Slurm here (srun is not on PATH); run this on a Slurm login "
                                       "node, or use --cluster local to run the jobs on this machine")
    if plan.cluster == "local" and plan.gpus:
        import torch

        if torch.cuda.device_count() < plan.count:
            raise LaunchError("--gpus", f"{plan.count} GPU(s) asked, and this machine has "
                                        f"{torch.cuda.device_count()}; ask for fewer, or use --workers N for CPU "
                                        "workers")


def submit(plan: LaunchPlan) -> list[submitit.Job[Any]]:
    """Submit the plan's tasks (``check_cluster`` first): one Slurm array job, or one local job per task (each
    with its own GPU under --gpus). The log folder is made private: the tasks' pickles hold the database URL."""
    plan.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if plan.cluster == "slurm":
        executor = submitit.SlurmExecutor(folder=plan.log_dir, max_num_timeout=3)
        executor.update_parameters(**slurm_parameters(plan))
        return list(executor.submit_array(tasks(plan)))
    local = submitit.LocalExecutor(folder=plan.log_dir, max_num_timeout=3)
    local.update_parameters(timeout_min=plan.time_min, signal_delay_s=plan.signal_delay_s, tasks_per_node=1)
    jobs: list[submitit.Job[Any]] = []
    for i, task in enumerate(tasks(plan)):
        if plan.gpus:  # the local controller sets CUDA_VISIBLE_DEVICES from these: GPU i alone for task i
            local.update_parameters(gpus_per_node=1, visible_gpus=(i,))
        jobs.append(local.submit(task))
    return jobs


def stop_local(jobs: list[submitit.Job[Any]]) -> None:
    """SIGTERM each local job's controller, which forwards it to its task: each gives its trial back and ends."""
    for job in jobs:
        if not job.done():
            try:
                os.kill(int(job.job_id), signal.SIGTERM)  # a local job's id is its controller's pid
            except (ProcessLookupError, ValueError):
                pass


def outcome(job: submitit.Job[Any]) -> tuple[bool, str, str | None]:
    """Wait for ``job``; (ended well, one line on how it ended, the signal that stopped its worker or None) from its
    result or its error's last line."""
    job.wait()
    error = job.exception()
    if error is not None:
        lines = [line for line in str(error).splitlines() if line.strip()]
        return False, (lines[-1] if lines else type(error).__name__), None
    result = job.result()
    stopped_by = result.get("stopped_by") or None
    how = f", stopped by {stopped_by}" if stopped_by else ""
    return True, f"worker {result['worker']} ran {result['trials']} trial(s){how}", stopped_by
