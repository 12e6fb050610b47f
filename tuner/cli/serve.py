"""``auxtune serve``: the REST API and its embedded local workers on one store."""

from __future__ import annotations

from typing import Annotated

import typer

from tuner.cli.common import check_gpus, check_threads, open_store
from tuner.cli.options import DbOption, DeviceOption, GpusOption, ThreadsOption, WorkersPerGpuOption


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=0, help="embedded local worker processes (0: API only)")] = 1,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="no tokens: for localhost demos only")] = False,
    device: DeviceOption = None,
    threads: ThreadsOption = None,
    gpus: GpusOption = None,
    workers_per_gpu: WorkersPerGpuOption = 1,
) -> None:
    """Run the REST API and N embedded local workers on one store (default: the SQLite file ./auxtune.db); a worker
    that dies is restarted (after 1 s, doubling up to 60 s while it keeps dying). --gpus: one embedded worker per
    GPU (times --workers-per-gpu) in place of --workers, each seeing only its GPU."""
    from api.__main__ import main as api_main
    from api.config import Settings
    from storage import resolve_url
    from tuner.execution.local import threads_args
    from tuner.execution.supervisor import WorkerSupervisor

    placed = check_gpus(gpus, workers_per_gpu, device)  # no CUDA here: exit 2 before anything starts
    url = resolve_url(db).render_as_string(hide_password=False)  # --db, else $AUXTUNE_DB, else ./auxtune.db
    open_store(url).close()  # one clear line now if the database cannot be opened; migrations run once, here
    # A worker that dies is restarted, with backoff (tuner.execution.supervisor); stopping the service stops them all.
    # The embedded workers share the API's data dir as their data set cache: one copy of each upload on this machine.
    cache = ["--cache-dir", str(Settings().data_dir.expanduser().absolute())]
    with WorkerSupervisor(url, workers, "--forever", *cache, *(["--device", device] if device else []),
                          *threads_args(check_threads(threads)), gpus=placed):
        code = api_main(["--host", host, "--port", str(port), "--db", url, *(["--no-auth"] if no_auth else [])])
    raise typer.Exit(code)
