"""The API's peak memory under hostile input: decompression, width and size bombs sent to a real server.

A real server is started as its own process (``python -m api``, via ``bench/api_load.py``'s ``Server``: uvicorn,
auth on, a SQLite file and a data dir in a temporary directory). The bombs are generated locally (by
``tests/api/bomb_factories.py``, in pieces, so the client stays small) and sent one after the other over real
HTTP:

- a Parquet of ``--rows`` (40 M) constant rows, a few MB on disk (the issue's 2.2 MB file left the API at 4.2 GB);
- a Parquet whose label is one 1 MiB text on each of 300 rows (one dictionary entry on disk, 300 MiB decoded);
- a CSV of 300 000 columns (19 s to parse before), one with a single row of 20 M fields, one of 4 M short rows;
- zips of a folder (``tuner.workloads.archives``): one entry of 1 GiB of zeros (1000:1), 2 000 entries of 1 MiB
  each (under the per-entry ratio floor, 2 GiB in all), 300 000 entries (a central directory costing an object
  each if parsed naively), and an entry whose directory and header claim 100 bytes but which inflates to 64 MiB;
- a spec asking for a grid of ``grid_points: 1000000``;
- a spec pasted as YAML (``POST /api/v1/dashboard/spec``) holding an integer of 900 000 digits.

For each: the status code, the seconds to answer, and the server's peak resident memory during it (``VmHWM`` of
``/proc/<pid>/status``, polled), then whether the peak stayed under ``--goal-mb`` (500) with no server lost. A
server past ``--kill-mb`` (2000) is killed, so a bomb that gets through costs the machine no more, and restarted
for the next case. Last, and outside the goal
check, the largest table the limits accept (``MAX_ROWS`` × ``MAX_CELLS / MAX_ROWS`` columns of float64) is
uploaded, to show what an accepted upload costs. Linux only (``/proc``).

    python bench/upload_bombs.py [--rows 40000000] [--goal-mb 500]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_load import Server  # noqa: E402

from tests.api.bomb_factories import (  # noqa: E402
    constant_parquet,
    forged_size_zip,
    long_csv,
    long_row_csv,
    long_text_parquet,
    many_entries_zip,
    wide_csv,
    wide_zip_bomb,
    zip_bomb,
)
from tuner.workloads.table_files import MAX_CELLS, MAX_ROWS  # noqa: E402

DATASETS = "/api/v1/datasets"
GRID_SPEC = {"name": "grid-bomb", "workload": {"name": "synthetic"},
             "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
             "search": {"algorithm": "grid", "grid_points": 1_000_000}}


def peak_mb(pid: int, field: str = "VmHWM") -> float | None:
    """The process's peak (``VmHWM``) or current (``VmRSS``) resident set in MB; None once it has exited."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None  # gone, or a zombie (no memory left to report)


class PeakWatch:
    """Polls a server's VmHWM while a request runs, so the peak of a server that dies is still known; kills it
    past ``kill_mb``, so that a bomb that gets through costs the machine that much, not all its memory."""

    def __init__(self, pid: int, kill_mb: float) -> None:
        self.pid, self.kill_mb, self.killed = pid, kill_mb, False
        self.peak, self.done = peak_mb(pid) or 0.0, threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.done.wait(0.02):
            seen = peak_mb(self.pid)
            if seen is None:
                return
            self.peak = max(self.peak, seen)
            if (peak_mb(self.pid, "VmRSS") or 0.0) > self.kill_mb:
                os.kill(self.pid, signal.SIGKILL)
                self.killed = True
                return

    def stop(self) -> tuple[float, bool]:
        """(the peak seen in MB, whether the server is still alive)."""
        self.done.set()
        self.thread.join()
        seen = peak_mb(self.pid)
        return max(self.peak, seen or 0.0), seen is not None


def upload(http: httpx.Client, path: Path) -> httpx.Response:
    with path.open("rb") as f:
        return http.post(DATASETS, files={"file": (path.name, f)}, data={"label": "breed"})


def largest_accepted(path: Path) -> Path:
    """A table of ``MAX_ROWS`` rows and as many columns as ``MAX_CELLS`` allows (the label included), of 100
    distinct values each, so that it compresses under the upload limit and decodes to 8 bytes a cell."""
    import numpy as np
    import pandas as pd

    columns = MAX_CELLS // MAX_ROWS
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.integers(0, 100, MAX_ROWS) / 10 for i in range(columns - 1)})
    frame["breed"] = rng.integers(0, 2, MAX_ROWS)
    frame.to_parquet(path, index=False)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000_000, help="rows of the constant Parquet bomb")
    parser.add_argument("--goal-mb", type=float, default=500.0, help="the server's peak RSS must stay under this")
    parser.add_argument("--kill-mb", type=float, default=2000.0, help="kill the server when its RSS passes this")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="upload-bombs-") as tmp:
        root = Path(tmp)
        files = root / "files"
        files.mkdir()
        print("writing the bombs ...", flush=True)
        bombs: list[tuple[str, Callable[[httpx.Client], httpx.Response], Path | None]] = []
        for what, path in (
            (f"Parquet, {args.rows} constant rows", constant_parquet(files / "rows.parquet", args.rows)),
            ("Parquet, 1 MiB label on 300 rows", long_text_parquet(files / "text.parquet", 300, 1 << 20)),
            ("CSV, 300 000 columns", wide_csv(files / "wide.csv", 300_000, rows=2)),
            ("CSV, one row of 20 M fields", long_row_csv(files / "row.csv", 20_000_000)),
            ("CSV, 4 M rows", long_csv(files / "long.csv", 4_000_000)),
            ("zip, one 1 GiB entry of zeros", zip_bomb(files / "bomb.zip", 1 << 30)),
            ("zip, 2 000 entries of 1 MiB", wide_zip_bomb(files / "wide.zip", 2000)),
            ("zip, 300 000 entries", many_entries_zip(files / "many.zip", 300_000)),
            ("zip, 64 MiB entry claiming 100 bytes", forged_size_zip(files / "forged.zip", 64 << 20)),
        ):
            bombs.append((what, lambda http, p=path: upload(http, p), path))
        bombs.append(("spec, grid_points 1000000", lambda http: http.post("/api/v1/studies", json=GRID_SPEC), None))
        yaml_int = ("name: big\nworkload: {name: synthetic}\naux_tasks: [{name: helpful, loss: bce}]\n"
                    "search:\n  n_trials: " + "9" * 900_000 + "\n").encode()
        bombs.append(("YAML spec, a 900 000-digit int",
                      lambda http: http.post("/api/v1/dashboard/spec", content=yaml_int,
                                             headers={"Content-Type": "text/yaml"}), None))

        os.environ["AUXTUNE_DATA_DIR"] = str(root / "data")
        db = f"sqlite:///{root / 'api.db'}"
        server = Server(db)
        peak, died = 0.0, 0
        try:
            print(f"server pid {server.proc.pid}, peak RSS after start: {peak_mb(server.proc.pid):.0f} MB\n")
            print(f"{'case':<38} {'on disk':>10} {'status':>6} {'seconds':>8} {'peak RSS':>9}")
            for what, send, path in bombs:
                size = f"{path.stat().st_size / 1e6:.1f} MB" if path else "-"
                watch = PeakWatch(server.proc.pid, args.kill_mb)
                started = time.perf_counter()
                with server.client() as http:
                    http.timeout = httpx.Timeout(600)
                    try:
                        status = str(send(http).status_code)
                    except httpx.HTTPError as exc:
                        status = type(exc).__name__
                seconds = time.perf_counter() - started
                seen, alive = watch.stop()
                peak = max(peak, seen)
                why = f"killed past {args.kill_mb:.0f} MB" if watch.killed else "the server died"
                print(f"{what:<38} {size:>10} {status:>6} {seconds:>8.2f} {seen:>6.0f} MB"
                      + ("" if alive else f"  ({why}; restarted)"), flush=True)
                if not alive:
                    died += 1
                    server.stop()
                    server = Server(db)
            verdict = "met" if peak < args.goal_mb and not died else "MISSED"
            print(f"\npeak RSS across the bomb cases: {peak:.0f} MB, server deaths: {died}; goal < "
                  f"{args.goal_mb:.0f} MB and none: {verdict}\n")
            path = largest_accepted(files / "largest.parquet")
            watch = PeakWatch(server.proc.pid, args.kill_mb)
            started = time.perf_counter()
            with server.client() as http:
                http.timeout = httpx.Timeout(600)
                r = upload(http, path)
            seconds = time.perf_counter() - started
            seen, _ = watch.stop()
            print(f"{'largest accepted table (not a bomb)':<38} {path.stat().st_size / 1e6:>7.1f} MB "
                  f"{r.status_code:>6} {seconds:>8.2f} {seen:>6.0f} MB")
        finally:
            server.stop()
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
