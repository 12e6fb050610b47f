"""The product as users meet it: real ``auxtune serve`` (uvicorn over real HTTP) and real worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from storage import Store

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Service:
    """``auxtune serve`` on a free loopback port, restartable, plus separately started workers; ``log``: where
    serve's output goes (default: nowhere)."""

    def __init__(self, url: str, embedded_workers: int, *serve_args: str, log: Path | None = None):
        self.db, self.embedded, self.serve_args, self.log = url, embedded_workers, serve_args, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_api(self) -> None:
        with open(self.log or os.devnull, "ab") as out:
            self.api = subprocess.Popen(
                [sys.executable, "-m", "tuner.cli", "serve", "--db", self.db, "--port", str(self.port), "--no-auth",
                 "--workers", str(self.embedded), *self.serve_args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200, 60, "the API")

    def stop_api(self) -> None:
        assert self.api is not None
        self.api.send_signal(signal.SIGINT)
        self.api.wait(60)

    def start_worker(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tuner.cli", "worker", "--db", self.db, "--forever", "--threads", "1",
             "--lease-timeout", "3", "--heartbeat", "0.3", "--stream", str(len(self.workers))],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers.append(proc)
        return proc

    def close(self) -> None:
        for p in [*self.workers, *([self.api] if self.api else [])]:
            if p.poll() is None:
                p.kill()
                p.wait(10)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base}/api/v1{path}", timeout=10)


@pytest.fixture
def service_factory() -> Iterator[Callable[..., Service]]:
    made: list[Service] = []

    def make(url: str, embedded_workers: int, *serve_args: str, log: Path | None = None) -> Service:
        svc = Service(url, embedded_workers, *serve_args, log=log)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


def synthetic_spec(name: str, n_trials: int, epochs: int) -> dict:
    return {
        "name": name,
        "workload": {"name": "synthetic"},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
        "search": {"algorithm": "tpe", "n_trials": n_trials, "seed": 0},
        "training": {"epochs": epochs, "batch_size": 32, "lr": 0.003},
    }


def test_post_study_then_best_ranks_harmful_below_helpful(service_factory, tmp_path: Path) -> None:
    svc = service_factory(f"sqlite:///{tmp_path / 'svc.db'}", 2)
    svc.start_api()
    r = httpx.post(f"{svc.base}/api/v1/studies", json=synthetic_spec("e2e", 14, 40), timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert svc.get(f"/studies/{sid}/best").status_code in (409, 200)
    wait_for(lambda: svc.get(f"/studies/{sid}").json()["status"] == "done", 300, "the study to finish")
    best = svc.get(f"/studies/{sid}/best").json()
    assert set(best["lambdas"]) == {"helpful", "harmful"} and best["value"] is not None, best
    trials = svc.get(f"/studies/{sid}/trials?limit=100").json()
    assert trials["count"] == 14
    # Two workers race, so which trial TPE proposes when (and so the single best) varies run to run; the
    # least-squares slopes over all 14 trials do not: accuracy rises with helpful's λ and falls with harmful's.
    done = [t for t in trials["data"] if t["value"] is not None]
    x = np.array([[1.0, t["lambdas"]["helpful"], t["lambdas"]["harmful"]] for t in done])
    _, slope_helpful, slope_harmful = np.linalg.lstsq(x, np.array([t["value"] for t in done]), rcond=None)[0]
    assert slope_harmful < 0 < slope_helpful, (slope_helpful, slope_harmful)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_killed_worker_and_restarted_api_lose_nothing(engine: str, service_factory, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path / 'svc.db'}" if engine == "sqlite" else request.getfixturevalue("fresh_pg_url")
    svc = service_factory(url, 0)
    svc.start_api()
    for _ in range(3):
        svc.start_worker()
    r = httpx.post(f"{svc.base}/api/v1/studies", json=synthetic_spec("crashy", 6, 120), timeout=30)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    def running_trials() -> list[dict]:
        return [t for t in svc.get(f"/studies/{sid}/trials?limit=100").json()["data"] if t["state"] == "running"]

    wait_for(running_trials, 120, "a running trial")
    victim_trial = running_trials()[0]
    with Store(url) as store:
        pid = store.get_worker(victim_trial["worker"]).pid
    os.kill(pid, signal.SIGKILL)

    svc.stop_api()  # the API goes down mid-study; the workers carry on through the store
    time.sleep(1)
    svc.start_api()
    wait_for(lambda: svc.get(f"/studies/{sid}").json()["status"] == "done", 400, "the study to finish")

    rows = svc.get(f"/studies/{sid}/trials?limit=100").json()["data"]
    assert sorted(t["number"] for t in rows) == list(range(6))  # each trial number exactly once
    assert all(t["state"] == "complete" for t in rows), [(t["number"], t["state"]) for t in rows]
    killed = next(t for t in rows if t["number"] == victim_trial["number"])
    assert killed["attempt"] == 2 and killed["worker"] != victim_trial["worker"]
    assert all(t["attempt"] == 1 for t in rows if t["number"] != victim_trial["number"])
    with Store(url) as store:  # Optuna's ledger agrees: one finished Optuna trial per number
        study = store.get_study(sid)
        ledger = store.optuna_study(study).get_trials(deepcopy=False)
        assert sorted(t.number for t in ledger) == list(range(6))
        assert all(t.state.name == "COMPLETE" for t in ledger)
