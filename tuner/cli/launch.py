"""``auxtune launch slurm``: workers as a Slurm job array (``tuner.execution.slurm``), or as local jobs to try it.

Bad flags exit 2 naming the flag; with ``--cluster local`` (or ``--wait``) the command waits for the jobs and
exits 1 if one of them ended with an error.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from tuner.cli.common import EXIT_CHECK_FAILED, fail, find_study, open_store
from tuner.cli.options import (
    LEASE_TIMEOUT_S,
    DbOption,
    ForeverOption,
    LeaseTimeoutOption,
    PopulationOption,
    StudiesOption,
)

launch_app = typer.Typer(no_args_is_help=True, help="Start workers elsewhere: on a Slurm cluster (launch slurm).")


@launch_app.command()
def slurm(
    db: DbOption = None,
    gpus: Annotated[int | None, typer.Option(help="array tasks, one GPU each (each runs one worker on it)")] = None,
    workers: Annotated[int | None, typer.Option(help="array tasks of one CPU worker each")] = None,
    partition: Annotated[str | None, typer.Option(help="Slurm partition (default: the cluster's)")] = None,
    time: Annotated[str | None, typer.Option(
        help="each task's time limit, as Slurm writes it: MINUTES, HH:MM:SS, D-HH:MM (default: 60)")] = None,
    cluster: Annotated[str, typer.Option(
        help="slurm: sbatch on this cluster; local: the same jobs on this machine (submitit's LocalExecutor)")
    ] = "slurm",
    log_dir: Annotated[Path, typer.Option(help="where submitit writes each task's logs and pickles")] = Path(
        "auxtune-slurm"),
    requeue: Annotated[bool, typer.Option(
        help="on timeout or preemption (SIGUSR2), give the trial back and requeue the task")] = False,
    wait: Annotated[bool, typer.Option(help="wait for the Slurm jobs to end (--cluster local always waits)")] = False,
    study: StudiesOption = None,
    forever: ForeverOption = False,
    lease_timeout: LeaseTimeoutOption = LEASE_TIMEOUT_S,
    cpus_per_task: Annotated[int | None, typer.Option(min=1, help="CPUs per task (Slurm), torch threads")] = None,
    population: PopulationOption = None,
    signal_delay: Annotated[int, typer.Option(
        help="seconds before the time limit that Slurm sends SIGUSR2: one epoch must fit in them")] = 90,
    sbatch: Annotated[list[str] | None, typer.Option(
        help="extra sbatch option KEY=VALUE (repeatable), e.g. --sbatch account=myproject")] = None,
) -> None:
    """Run N workers as a Slurm job array (one task per GPU, or per CPU worker) on the store at --db, which every
    task must reach (on a Slurm cluster: a PostgreSQL URL)."""
    from storage import StoreError
    from storage.database import resolve_url, safe_url, sqlite_path
    from tuner.engine.threads import thread_count
    from tuner.execution.slurm import (
        LaunchError,
        check_cluster,
        outcome,
        parse_sbatch,
        plan_launch,
        stop_local,
        submit,
        task_threads,
    )

    try:
        url = resolve_url(db)
    except StoreError as exc:
        raise fail([f"--db: {exc}"]) from None
    try:
        plan = plan_launch(url=url.render_as_string(hide_password=False), gpus=gpus, workers=workers,
                           cluster=cluster, is_sqlite=sqlite_path(url) is not None, time=time,
                           signal_delay_s=signal_delay, partition=partition, log_dir=log_dir.absolute(),
                           requeue=requeue, studies=tuple(study or ()), forever=forever,
                           lease_timeout_s=lease_timeout, cpus_per_task=cpus_per_task, population=population,
                           sbatch=parse_sbatch(sbatch or []))
        check_cluster(plan)
    except LaunchError as exc:
        raise fail([str(exc)]) from None
    store = open_store(plan.url)  # one clear line now if the tasks could not open it; migrations run once, here
    try:
        for name in plan.studies:
            find_study(store, name)
    finally:
        store.close()
    # Local jobs start from this process: without SIGINT they ignore a Ctrl-C in this terminal (which would
    # make submitit's controller kill its task within a second), and this command stops them as SIGTERM does.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if plan.cluster == "local" else None
    try:
        jobs = submit(plan)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    echo = typer.echo
    if plan.cluster == "slurm":
        array = jobs[0].job_id.split("_")[0]
        each = "1 GPU" if plan.gpus else f"{plan.cpus_per_task or 'the partition default'} CPU(s)"
        echo(f"submitted Slurm job {array}: {plan.count} array task(s) {array}_0..{array}_{plan.count - 1}, "
             f"{each} and {plan.time_min} min each, on {safe_url(plan.url)}")
        echo(f"watch them: squeue -j {array}; sacct -j {array}; logs: {plan.log_dir}/{array}_*_log.err; "
             f"stop them (each gives its trial back): scancel {array}")
    else:
        threads = task_threads(plan)
        each = "1 GPU" if plan.gpus else f"{threads or thread_count()} torch thread(s)"
        echo(f"started {plan.count} local job(s) {', '.join(j.job_id for j in jobs)} ({each} each, "
             f"{plan.time_min} min limit) on {safe_url(plan.url)}")
        echo(f"logs: {', '.join(str(j.paths.stderr) for j in jobs)}")
    echo(f"progress: auxtune status STUDY --db '{safe_url(plan.url)}'")
    if plan.cluster == "slurm" and not wait:
        return
    echo("waiting for the jobs to end (Ctrl-C: each gives its trial back and stops)")
    interrupted = False
    while True:
        try:
            ended = [(job, *outcome(job)) for job in jobs]
            break
        except KeyboardInterrupt:
            if plan.cluster == "slurm" or interrupted:
                raise typer.Exit(130) from None  # Slurm jobs keep running: scancel stops them
            interrupted = True
            stop_local(jobs)
    for job, _, line, _ in ended:
        echo(f"job {job.job_id}: {line}")
    # A Ctrl-C while the jobs were being started (SIGINT ignored here then, see above) still reached the workers,
    # which stopped and gave their trials back: it was an interrupt all the same.
    if interrupted or any(stopped_by == "SIGINT" for *_, stopped_by in ended):
        raise typer.Exit(130)
    if not all(ok for _, ok, _, _ in ended):
        raise fail([f"a job ended with an error: see its log in {plan.log_dir}"], EXIT_CHECK_FAILED)
