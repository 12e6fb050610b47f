"""The arguments and options that several ``auxtune`` commands take, each declared once (name, help, bounds).

A command gives the default (``db: DbOption = None``); options only one command has stay with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

#: Seconds a lease lasts without a heartbeat: ``storage.DEFAULT_LEASE_TIMEOUT_S``, written here as a number
#: because importing the store would slow the start of every command.
LEASE_TIMEOUT_S = 60.0

SpecArgument = Annotated[Path, typer.Argument(metavar="SPEC", help="study spec, YAML or JSON")]
StudyArgument = Annotated[str, typer.Argument(metavar="STUDY", help="study name or id")]

DbOption = Annotated[str | None, typer.Option("--db", help="store URL (default: $AUXTUNE_DB or sqlite:///./auxtune.db)")]
UrlOption = Annotated[str | None, typer.Option(
    "--url", help="the service's address, e.g. http://127.0.0.1:8000 (auxtune serve); without it: the local store")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", envvar="AUXTUNE_TOKEN", help="bearer token for --url (or $AUXTUNE_TOKEN); not needed with serve "
                                            "--no-auth")]
JsonOption = Annotated[bool, typer.Option("--json", help="print as JSON")]

DeviceOption = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:N (default: the spec's)")]
ThreadsOption = Annotated[int | None, typer.Option(
    "--threads", help="torch CPU threads per worker (default: $AUXTUNE_THREADS, else 1); results are reproducible "
                      "at one thread count, not across counts")]
WorkersOption = Annotated[int, typer.Option(
    "--workers", min=1, help="local workers sharing the store (run: one runs in this process, more as worker "
                             "processes)")]
LeaseTimeoutOption = Annotated[float, typer.Option(
    "--lease-timeout", min=1.0, help="seconds without heartbeat before a worker's trial is requeued")]

StudiesOption = Annotated[list[str] | None, typer.Option("--study", help="serve only this study (repeatable)")]
ForeverOption = Annotated[bool, typer.Option(
    "--forever/--no-forever", help="keep polling for new studies when idle (else end once there is no work)")]
PopulationOption = Annotated[int | None, typer.Option(
    "--population", min=1, help="trials of one study to train together as one batched model (default: the spec's)")]
GpusOption = Annotated[str | None, typer.Option(
    "--gpus", help="one worker process per GPU: 'all' or host indices like 0,2,3; each sees only its GPU, as "
                   "cuda:0 (CUDA_VISIBLE_DEVICES)")]
WorkersPerGpuOption = Annotated[int, typer.Option(
    "--workers-per-gpu", help="workers on each --gpus GPU, for small models (population.size batches trials on "
                              "one GPU better)")]
