"""What every ``auxtune`` command shares: the consoles, the exit codes, failing with one line per problem, reading
the spec file, checking ``--threads``, and opening the store (closed before the program exits).

Exit codes: 0 success, 1 the set-up failed a check (sanity gate, trial, no result yet), 2 bad input (spec, λ,
arguments, a store or study that is not there). The engine and the store are imported inside the functions, so
``auxtune`` starts fast for every command.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from storage import Store, StudyRecord
    from tuner.spec import StudySpec

console = Console()
err_console = Console(stderr=True)

EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


def fail(lines: list[str], code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print each line as an error on stderr; raise what it returns to exit with ``code``."""
    for line in lines:
        err_console.print(f"[red]error:[/red] {line}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


def load_spec_file(path: Path) -> StudySpec:
    """The spec at ``path``; a bad one exits 2 naming each bad field."""
    from tuner.spec import SpecError, load_spec

    try:
        return load_spec(path)
    except SpecError as exc:
        raise fail(exc.lines()) from None


def check_threads(threads: int | None) -> int | None:
    """``--threads`` checked now (and ``$AUXTUNE_THREADS`` with it), before any store or worker is started."""
    from tuner.engine.threads import ThreadsError, thread_count

    try:
        thread_count(threads)
    except ThreadsError as exc:
        raise fail([str(exc)]) from None
    return threads


def check_gpus(gpus: str | None, workers_per_gpu: int, device: str | None = None) -> list[int] | None:
    """``--gpus`` and ``--workers-per-gpu`` as the host GPU index of each worker to start (None: no ``--gpus``),
    checked now: without CUDA here, ``--gpus`` exits 2 at once, naming the flag."""
    from tuner.execution.placement import PlacementError, placement

    if gpus is None:
        if workers_per_gpu != 1:
            raise fail(["--workers-per-gpu: only with --gpus (it says how many workers each listed GPU gets)"])
        return None
    if device is not None:
        raise fail(["--device: leave it out with --gpus (each worker sees only its own GPU, as cuda:0)"])
    try:
        return placement(gpus, workers_per_gpu)
    except PlacementError as exc:
        raise fail([escape(str(exc))]) from None


#: The stores opened by this command while it runs as a program (``closing_stores``), to close before it exits.
_stores_to_close: list[Store] | None = None


@contextmanager
def closing_stores() -> Iterator[None]:
    """Close every store a command opens in the block when it ends: ``tuner.cli.main.main`` exits with
    ``exit_now``, which skips the interpreter's teardown, whose garbage collection would close their connections
    (and SQLite then checkpoints)."""
    global _stores_to_close
    _stores_to_close = []
    try:
        yield
    finally:
        for store in _stores_to_close:
            store.close()
        _stores_to_close = None


def open_store(db: str | None) -> Store:
    """The store at ``db`` (``--db``, else ``$AUXTUNE_DB``, else ./auxtune.db); one that cannot be opened exits 2."""
    from storage import Store, StoreError

    try:
        store = Store(db)
    except StoreError as exc:
        raise fail([str(exc).splitlines()[0]]) from None
    if _stores_to_close is not None:
        _stores_to_close.append(store)
    return store


def missing_store(db: str | None) -> str | None:
    """The SQLite file ``db`` names (``--db``, else ``$AUXTUNE_DB``, else ``./auxtune.db``) when it does not exist,
    as a user would write it; ``None`` when it exists or the store is PostgreSQL. Opening a missing file would
    create an empty store (and run the migrations) where the command ran."""
    from storage import StoreError
    from storage.database import resolve_url, sqlite_path

    try:
        path = sqlite_path(resolve_url(db))
    except StoreError:  # an unparsable URL: ``open_store`` names it
        return None
    if path is None or not path.name or path.exists():
        return None
    try:
        return f"./{path.relative_to(Path.cwd())}"
    except ValueError:
        return str(path)


def existing_store(db: str | None) -> Store:
    """The store at ``db`` for a command that only reads an existing study; a SQLite file that does not exist is
    refused (exit 2) instead of being created empty."""
    missing = missing_store(db)
    if missing is not None:
        raise fail([f"no store at {missing}: pass --db or run a study first"])
    return open_store(db)


def find_study(store: Store, name: str) -> StudyRecord:
    """The study named ``name`` (or with that id) in ``store``; none exits 2 listing the studies there."""
    from storage import StudyNotFound

    try:
        return store.get_study(int(name) if name.isdigit() else name)
    except StudyNotFound:
        known = [s.name for s in store.list_studies(limit=20)]
        raise fail([f"no study {name!r} in {store.safe_url}; studies: {known}"]) from None
