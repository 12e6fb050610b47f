"""Uploaded data sets in the store: the time and the memory of saving and fetching a ~50 MB upload.

For SQLite (a temporary file) and PostgreSQL (``--pg``, default the local test server; skipped if it does not
answer), a file of ``--mb`` MB of random bytes (incompressible, like images) is saved with ``Store.save_dataset``
(1 MiB chunks, one statement each) and fetched into a fresh cache by ``DatasetCache`` (chunk by chunk, digest
verified, renamed into place). Each step runs in a child process whose peak RSS growth over its start is printed
beside the seconds, so "never held in memory whole" reads as a growth well under the upload's size.

    python bench/dataset_store.py [--mb 50] [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _step(what: str, url: str, path: str, dataset_id: str, sha: str, cache: str, out: mp.Queue) -> None:
    from storage import Store
    from tuner.execution.datasets import DatasetCache

    store = Store(url)
    record = store.dataset(dataset_id) if what == "fetch" else None
    before, started = _peak_mb(), time.perf_counter()
    if what == "save":
        with open(path, "rb") as f:
            store.save_dataset(dataset_id, f, sha, owner=None, filename="big.bin", fmt="csv", meta={})
    else:
        assert record is not None
        DatasetCache(store, Path(cache)).path(record)
    out.put((time.perf_counter() - started, _peak_mb() - before))
    store.close()


def run(url: str, label: str, path: Path, sha: str, size_mb: float) -> None:
    dataset_id = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="dataset-cache-") as cache:
        for what in ("save", "fetch"):
            ctx = mp.get_context("spawn")
            out: mp.Queue = ctx.Queue()
            proc = ctx.Process(target=_step, args=(what, url, str(path), dataset_id, sha, cache,
                                                                        out))
            proc.start()
            seconds, growth = out.get(timeout=600)
            proc.join()
            print(f"{label:<11} {what:<6} {size_mb:>6.0f} MB {seconds:>8.2f} s {size_mb / seconds:>8.1f} MB/s "
                  f"{growth:>9.1f} MB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50.0, help="size of the upload (default 50 MB)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test", help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dataset-store-") as tmp:
        path = Path(tmp) / "big.bin"
        with path.open("wb") as f:
            for _ in range(int(args.mb)):
                f.write(os.urandom(1 << 20))
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        size_mb = path.stat().st_size / (1 << 20)
        print(f"{'store':<11} {'step':<6} {'size':>9} {'time':>10} {'rate':>13} {'peak RSS growth':>15}")
        run(f"sqlite:///{Path(tmp) / 's.db'}", "SQLite", path, sha, size_mb)
        if args.pg:
            try:
                run(args.pg, "PostgreSQL", path, sha, size_mb)
            except Exception as exc:  # no server here: say so, the SQLite figures stand
                print(f"PostgreSQL skipped: {type(exc).__name__}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
