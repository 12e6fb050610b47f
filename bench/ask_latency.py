"""ask+tell latency of auxtune's study store as the study grows, on SQLite and on PostgreSQL.

One ask+tell is what a worker does around each trial, through ``storage.Store``: one ``claim_trial`` that
creates a new trial (a new Optuna trial whose λ a seeded ``RandomSampler`` suggests; its cost does not depend on
the history, so the figure measures the store and not a sampler's model) plus one ``finish_trial(...,
"complete")`` (our ledger row, then Optuna's trial). Each is timed with ``time.perf_counter`` around
claim+finish. The SQL statements sent per ask+tell (both engines: ours and Optuna's) are counted too: a figure
that, unlike the milliseconds, does not depend on what else the machine is doing.

For each backend a fresh database is made (SQLite: a file in a temporary directory; PostgreSQL: a new schema
``auxtune_bench_<random>`` on ``--pg-url``, selected with ``options=-csearch_path=...`` and dropped at the end),
with one study whose ``n_trials`` leaves room for every checkpoint plus the measured operations. The study is
populated through the store API itself, the same claim+finish loop as the measurement, just not timed per
operation: no bulk insert, so the store is exactly what workers would have left. At each checkpoint (the
study holds exactly ``size`` trials, all complete) ``--ops`` consecutive ask+tell operations are timed; they
add trials too, so population to the next checkpoint starts from ``size + ops`` (+ the TPE operations below).
Populating 10 000 trials this way takes minutes (on a 2-CPU machine ~3 min on SQLite, ~6-8 min on PostgreSQL);
several populating worker processes were tried and were slower, since claims of one study are serialized.

Informational only: with ``--tpe-sizes`` (default 100,1000) a seeded ``TPESampler`` also runs ``--tpe-ops``
ask+tells at those checkpoints, on the same study. TPE (like GP samplers) reads and models the whole history
on every ask, so its cost grows with the number of trials by design; it is not the store's figure.

Goal (from the issue): p99 < 50 ms and flat in the number of stored trials. Prints figures; asserts nothing.

    python bench/ask_latency.py [--sizes 100,1000,10000] [--ops 200] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage import Store  # noqa: E402

DEFAULT_PG_URL = os.environ.get("AUXTUNE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
WORKER = "bench-worker"
GOAL_P99_MS = 50.0


def suggest(trial: optuna.trial.Trial) -> dict[str, float]:
    return {"helpful": trial.suggest_float("helpful", 0.0, 2.0), "harmful": trial.suggest_float("harmful", 0.0, 2.0)}


@dataclass
class Row:
    backend: str
    sampler: str
    stored: int
    ms: list[float]
    load: float  # 1-minute load average of the machine right after the timed operations (other processes too)
    statements: float = 0.0  # SQL statements per operation

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile (q in 0..100) of the latencies."""
        data = sorted(self.ms)
        rank = max(1, -(-len(data) * q // 100))  # ceil(n q / 100), at least 1
        return data[int(rank) - 1]


class Bench:
    """One backend: a store, one study, and a running count of the trials it holds."""

    def __init__(self, store: Store, n_trials: int, seed: int) -> None:
        self.store = store
        self.random = optuna.samplers.RandomSampler(seed=seed)
        self.tpe = optuna.samplers.TPESampler(seed=seed)
        store.register_worker(WORKER, host="bench", device="cpu", pid=os.getpid())
        spec = {"name": "ask-latency", "search": {"algorithm": "random", "n_trials": n_trials, "seed": seed}}
        self.study = store.create_or_resume_study("ask-latency", spec, ["maximize"], n_trials)
        self.stored = 0
        self.value = 0.0

    def ask_tell(self, sampler: optuna.samplers.BaseSampler) -> None:
        claim = self.store.claim_trial(self.study.id, WORKER, suggest, sampler=sampler)
        if claim is None:
            raise RuntimeError(f"no trial handed out after {self.stored} trials: n_trials too small")
        lam = claim.params
        self.store.finish_trial(claim, "complete", lam["helpful"] - (lam["harmful"] - 1.0) ** 2, result={})
        self.stored += 1

    def populate(self, size: int) -> float:
        """Claim+finish (untimed per op) until the study holds ``size`` trials; returns the seconds it took."""
        t0 = time.perf_counter()
        while self.stored < size:
            self.ask_tell(self.random)
        return time.perf_counter() - t0

    def measure(self, sampler: optuna.samplers.BaseSampler, ops: int) -> list[float]:
        ms = []
        for _ in range(ops):
            t0 = time.perf_counter()
            self.ask_tell(sampler)
            ms.append((time.perf_counter() - t0) * 1000.0)
        return ms

    def statements_per_op(self, sampler: optuna.samplers.BaseSampler, ops: int = 20) -> float:
        """SQL statements sent (our engine and Optuna's) per ask+tell, over ``ops`` more operations."""
        sent = [0]

        def count(*_: object) -> None:
            sent[0] += 1

        engines = (self.store._engine, self.store.optuna_storage.engine)
        for engine in engines:
            event.listen(engine, "before_cursor_execute", count)
        try:
            for _ in range(ops):
                self.ask_tell(sampler)
        finally:
            for engine in engines:
                event.remove(engine, "before_cursor_execute", count)
        return sent[0] / ops

    def check(self) -> None:
        counts = self.store.counts_by_state(self.study.id)
        total = sum(counts.values())
        if total != self.stored or counts.get("complete", 0) != total:
            raise RuntimeError(f"store holds {counts}, expected {self.stored} complete trials")


@contextmanager
def backend_url(backend: str, pg_url: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="auxtune-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'auxtune.db'}"
        return
    if backend != "postgresql":
        raise SystemExit(f"unknown backend {backend!r} (sqlite, postgresql)")
    schema = f"auxtune_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


def run_backend(backend: str, args: argparse.Namespace, sizes: list[int], tpe_sizes: list[int]) -> list[Row]:
    n_trials = max(sizes) + len(sizes) * (args.ops + 20) + len(tpe_sizes) * args.tpe_ops + 10
    rows: list[Row] = []
    with backend_url(backend, args.pg_url) as url, Store(url) as store:
        bench = Bench(store, n_trials, args.seed)
        t_backend = time.perf_counter()
        for size in sizes:
            if bench.stored > size:
                print(f"  {backend}: skipping {size}: the study already holds {bench.stored} trials", flush=True)
                continue
            took = bench.populate(size)
            bench.check()
            print(f"  {backend}: populated to {size} trials in {took:.1f} s; timing {args.ops} ask+tell",
                  flush=True)
            rows.append(Row(backend, "random", size, bench.measure(bench.random, args.ops), os.getloadavg()[0],
                            bench.statements_per_op(bench.random)))
            if size in tpe_sizes and args.tpe_ops > 0:
                stored = bench.stored
                rows.append(Row(backend, "tpe", stored, bench.measure(bench.tpe, args.tpe_ops), os.getloadavg()[0]))
            bench.check()
        print(f"  {backend}: done in {time.perf_counter() - t_backend:.1f} s "
              f"({bench.stored} trials in the study)", flush=True)
    return rows


def table(rows: list[Row]) -> str:
    head = (f"{'backend':<11} {'stored trials':>13} {'ops':>5} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
            f"{'max ms':>8} {'load1':>6} {'SQL/op':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.backend:<11} {r.stored:>13} {len(r.ms):>5} {r.percentile(50):>8.2f} "
                     f"{r.percentile(99):>8.2f} {statistics.fmean(r.ms):>8.2f} {max(r.ms):>8.2f} {r.load:>6.2f} "
                     f"{r.statements:>6.1f}")
    return "\n".join(lines)


def parse_ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=parse_ints, default=parse_ints("100,1000,10000"),
                    help="stored-trial checkpoints, comma-separated (default 100,1000,10000)")
    ap.add_argument("--ops", type=int, default=200, help="timed ask+tell operations per checkpoint (default 200)")
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated (default sqlite,postgresql)")
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL, help=f"PostgreSQL server (default {DEFAULT_PG_URL})")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tpe-sizes", type=parse_ints, default=parse_ints("100,1000"),
                    help="checkpoints at which TPE is also timed, informational ('' for none; default 100,1000)")
    ap.add_argument("--tpe-ops", type=int, default=50, help="timed TPE ask+tell operations (default 50)")
    args = ap.parse_args()
    if args.ops < 1 or not args.sizes:
        ap.error("--ops must be ≥ 1 and --sizes non-empty")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sizes = sorted(set(args.sizes))
    tpe_sizes = sorted(set(args.tpe_sizes))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]

    t0 = time.perf_counter()
    rows: list[Row] = []
    for backend in backends:
        rows += run_backend(backend, args, sizes, tpe_sizes)

    store_rows = [r for r in rows if r.sampler == "random"]
    print()
    print(f"ask+tell latency through the store (claim_trial + finish_trial, RandomSampler(seed={args.seed}))")
    print(table(store_rows))
    for backend in backends:
        mine = [r for r in store_rows if r.backend == backend]
        if not mine:
            continue
        p99s = [r.percentile(99) for r in mine]
        p50s = [r.percentile(50) for r in mine]
        print(f"{backend}: worst p99 {max(p99s):.2f} ms (goal < {GOAL_P99_MS:.0f} ms: "
              f"{'met' if max(p99s) < GOAL_P99_MS else 'NOT met'}); p50 at {mine[-1].stored} / {mine[0].stored} "
              f"stored trials = {p50s[-1] / p50s[0]:.2f}x")
    tpe_rows = [r for r in rows if r.sampler == "tpe"]
    if tpe_rows:
        print()
        print(f"informational, not the store's figure: the same with TPESampler(seed={args.seed}), "
              "whose model grows with the history by design")
        print(table(tpe_rows))
    print(f"load1: the machine's 1-minute load average after the timed operations ({os.cpu_count()} CPUs here); "
          "figures taken under load from other processes are not the store's own")
    print(f"\ntotal runtime {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
