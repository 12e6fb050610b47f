"""REST latency and throughput of a real auxtune API server on loopback, with a study of many stored trials.

For each backend a fresh database is made (SQLite: a file in a temporary directory; PostgreSQL: a new schema on
``--pg-url``, dropped at the end, as in ``bench/ask_latency.py``), a real server is started as its own process
(``python -m api``: uvicorn, auth on, an admin token from ``AUXTUNE_ADMIN_TOKEN``), and over real HTTP:

1. one study is submitted with ``POST /api/v1/studies``, and ``--trials`` trials are stored in it through the
   store API as workers leave them (claim, sanity record, finish; no bulk insert);
2. ``GET /api/v1/studies/{id}/trials`` (pages of ``--page`` trials at random offsets, and the same filtered by
   ``state=complete``) and ``GET /api/v1/studies/{id}/best`` are timed ``--requests`` times each, one request
   after the other on one keep-alive connection: p50/p99 of the wall time a client sees;
3. ``POST /api/v1/studies`` of new studies (each creates its Optuna study and enqueues its two control trials)
   is timed with 1 and with ``--clients`` concurrent clients: requests/s.

Prints figures; asserts nothing. The client runs on the same machine as the server (and the database): on a
2-CPU machine they compete for the CPUs, which the figures include.

    python bench/api_load.py [--trials 10000] [--requests 300] [--posts 200] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ask_latency import DEFAULT_PG_URL, backend_url  # noqa: E402

from storage import Store  # noqa: E402

WORKER = "bench-worker"
SPEC = {
    "name": "load",
    "workload": {"name": "synthetic"},
    "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
    "search": {"algorithm": "random", "seed": 0},
    "training": {"epochs": 3},
}


def suggest(trial: optuna.trial.Trial) -> dict[str, float]:
    return {"helpful": trial.suggest_float("helpful", 0.0, 2.0), "harmful": trial.suggest_float("harmful", 0.0, 2.0)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Timing:
    what: str
    ms: list[float]

    def percentile(self, q: float) -> float:
        data = sorted(self.ms)
        return data[max(1, -(-len(data) * int(q) // 100)) - 1]


class Server:
    """``python -m api`` on a free loopback port, auth on; stopped with SIGTERM."""

    def __init__(self, url: str) -> None:
        self.token = secrets.token_urlsafe(24)
        self.port = free_port()
        env = {**os.environ, "AUXTUNE_ADMIN_TOKEN": self.token}
        cmd = [sys.executable, "-m", "api", "--db", url, "--port", str(self.port), "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not come up on {self.base}")
            time.sleep(0.2)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def populate(store: Store, study_id: int, n: int) -> float:
    """Store ``n`` finished trials as workers would (claim, sanity outcome, finish); returns the seconds."""
    t0 = time.perf_counter()
    rng = random.Random(0)
    sanity = {"passed": True, "reason": "", "steps": 7, "loss_drop": 0.6, "main_accuracy": 1.0}
    for i in range(n):
        claim = store.claim_trial(study_id, WORKER, suggest, lease_timeout_s=600)
        if claim is None:
            raise RuntimeError(f"no trial handed out after {i} trials")
        store.record_sanity(claim, sanity)
        lam = claim.params
        value = lam["helpful"] - (lam["harmful"] - 1.0) ** 2 + rng.gauss(0, 0.01)
        store.finish_trial(claim, "complete", value, result={"value": value})
    return time.perf_counter() - t0


def time_gets(client: httpx.Client, study_id: int, n_trials: int, requests: int, page: int) -> list[Timing]:
    rng = random.Random(1)
    out = {"trials page": [], "trials page, state=complete": [], "best": []}
    for _ in range(requests):
        for what, path, params in (
            ("trials page", f"/api/v1/studies/{study_id}/trials",
             {"offset": rng.randrange(max(1, n_trials - page)), "limit": page}),
            ("trials page, state=complete", f"/api/v1/studies/{study_id}/trials",
             {"offset": rng.randrange(max(1, n_trials - page)), "limit": page, "state": "complete"}),
            ("best", f"/api/v1/studies/{study_id}/best", {}),
        ):
            t0 = time.perf_counter()
            r = client.get(path, params=params)
            out[what].append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"GET {path} → {r.status_code}: {r.text[:300]}")
            if what.startswith("trials") and len(r.json()["data"]) != page:
                raise RuntimeError(f"GET {path} gave {len(r.json()['data'])} trials, expected {page}")
    return [Timing(what, ms) for what, ms in out.items()]


def post_rate(server: Server, posts: int, clients: int, tag: str) -> float:
    """Requests/s of ``posts`` study submissions spread over ``clients`` concurrent clients."""
    errors: list[str] = []
    counter = iter(range(posts))
    lock = threading.Lock()

    def run() -> None:
        with server.client() as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                r = client.post("/api/v1/studies", json={**SPEC, "name": f"post-{tag}-{i}"})
                if r.status_code != 201:
                    errors.append(f"{r.status_code}: {r.text[:200]}")

    threads = [threading.Thread(target=run) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} POST(s) failed, e.g. {errors[0]}")
    return posts / took


def run_backend(backend: str, args: argparse.Namespace) -> None:
    with backend_url(backend, args.pg_url) as url:
        server = Server(url)
        try:
            with server.client() as client, Store(url) as store:
                r = client.post("/api/v1/studies", json={**SPEC, "search": {**SPEC["search"],
                                                                            "n_trials": args.trials}})
                r.raise_for_status()
                study_id = r.json()["id"]
                took = populate(store, study_id, args.trials)
                print(f"  {backend}: stored {args.trials} trials in {took:.1f} s", flush=True)
                for _ in range(10):  # warm-up: first requests open connections and fill caches
                    client.get(f"/api/v1/studies/{study_id}/best")
                timings = time_gets(client, study_id, args.trials, args.requests, args.page)
            rates = {c: post_rate(server, args.posts, c, f"{backend}-{c}") for c in (1, args.clients)}
        finally:
            server.stop()
    print(f"\n{backend}: {args.trials} stored trials, {args.requests} requests each, one keep-alive client")
    head = f"{'request':<40} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}"
    print(head + "\n" + "-" * len(head))
    for t in timings:
        label = f"GET {t.what}" + (f" ({args.page}/page)" if t.what.startswith("trials") else "")
        print(f"{label:<40} {t.percentile(50):>8.2f} {t.percentile(99):>8.2f} {statistics.fmean(t.ms):>8.2f} "
              f"{max(t.ms):>8.2f}")
    for c, rate in rates.items():
        print(f"POST /api/v1/studies, {c} client(s): {rate:.1f} requests/s ({args.posts} studies)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10_000, help="trials stored in the study (default 10000)")
    ap.add_argument("--requests", type=int, default=300, help="timed GETs of each kind (default 300)")
    ap.add_argument("--page", type=int, default=50, help="trials per page (default 50)")
    ap.add_argument("--posts", type=int, default=200, help="studies POSTed per client count (default 200)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients of the second POST run (default 8)")
    ap.add_argument("--backends", default="sqlite,postgresql", help="comma-separated (default sqlite,postgresql)")
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL, help=f"PostgreSQL server (default {DEFAULT_PG_URL})")
    args = ap.parse_args()
    if args.trials < args.page + 1:
        ap.error("--trials must exceed --page")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        run_backend(backend, args)
    print(f"\nload1 {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; total runtime {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
