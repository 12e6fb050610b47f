"""``auxtune serve`` keeps its embedded workers running and says when no live worker can take a study: real
serve, real worker processes, real HTTP (``tuner.execution.supervisor``, ``tuner.execution.liveness``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.e2e.test_service import ROOT, synthetic_spec, wait_for
from tests.e2e.test_service import service_factory as service_factory  # noqa: F401 (a fixture these tests use)

#: serve's workers hold their leases this long without a heartbeat (the worker's default --lease-timeout).
LEASE_TIMEOUT_S = 60


def seconds_trials(name: str, n_trials: int) -> dict:
    """Trials of a second or so each: one is still running when the test looks for it."""
    doc = synthetic_spec(name, n_trials, 10)
    doc["workload"]["params"] = {"n_train": 600, "n_val": 100, "n_test": 100}
    return doc


def test_a_sigkilled_embedded_worker_is_seen_dead_at_once_restarted_and_its_trial_requeued(
        service_factory, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    svc = service_factory(f"sqlite:///{tmp_path / 'sup.db'}", 1, "--threads", "2", log=log)
    svc.start_api()
    created = httpx.post(f"{svc.base}/api/v1/studies", json=seconds_trials("phoenix", 3), timeout=30)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]

    def busy_worker() -> dict | None:
        return next((w for w in svc.get("/workers").json()["data"] if w["alive"] and w["current_trial"] is not None),
                    None)

    wait_for(busy_worker, 120, "the embedded worker to run a trial")
    victim = busy_worker()
    assert victim is not None
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at, killed_clock = time.monotonic(), datetime.now(UTC)

    def victim_alive() -> bool:
        return next(w for w in svc.get("/workers").json()["data"] if w["id"] == victim["id"])["alive"]

    wait_for(lambda: not victim_alive(), 3, "/workers to report the SIGKILLed worker dead")
    seen_dead_s = time.monotonic() - killed_at
    metrics = httpx.get(f"{svc.base}/metrics", timeout=10).text
    alive = int(re.search(r"^auxtune_workers_alive (\d+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    registered = int(re.search(r"^auxtune_workers_registered (\d+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
    assert alive < registered, metrics  # the dead one is not counted

    def replacement() -> dict | None:
        return next((w for w in svc.get("/workers").json()["data"] if w["id"] != victim["id"] and w["alive"]), None)

    wait_for(replacement, 60, "a new embedded worker to register")
    wait_for(lambda: svc.get(f"/studies/{sid}").json()["status"] == "done", 240, "the study to finish")

    rows = svc.get(f"/studies/{sid}/trials?limit=10").json()["data"]
    assert sorted(t["number"] for t in rows) == [0, 1, 2] and all(t["state"] == "complete" for t in rows), rows
    retried = next(t for t in rows if t["number"] == victim["current_trial"])
    assert retried["attempt"] == 2 and retried["worker"] != victim["id"], retried
    # Requeued as soon as the supervisor saw the worker exit, not a lease timeout later.
    restarted_after_s = (datetime.fromisoformat(retried["started_at"]) - killed_clock).total_seconds()
    assert restarted_after_s < LEASE_TIMEOUT_S - 15, restarted_after_s
    for t in rows:  # serve's --threads reached every trial's record
        assert svc.get(f"/studies/{sid}/trials/{t['number']}").json()["result"]["torch_threads"] == 2
    text = log.read_text()
    assert re.search(rf"embedded worker 0 \(pid {victim['pid']}\) was killed by SIGKILL after \d+ s; restarting it "
                     r"in 1 s", text), text
    assert "embedded worker 0 restarted" in text, text
    print(f"SIGKILLed worker reported dead after {seen_dead_s:.2f} s; its trial restarted {restarted_after_s:.1f} s "
          "after the kill")


def status_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "status", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_a_queued_study_says_no_live_worker_can_take_it(service_factory, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'idle.db'}"
    svc = service_factory(url, 0)
    svc.start_api()
    created = httpx.post(f"{svc.base}/api/v1/studies", json=synthetic_spec("lonely", 2, 1), timeout=30)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]

    detail = svc.get(f"/studies/{sid}").json()
    assert detail["workers_alive"] == 0
    assert "no live worker can take this queued study" in detail["warning"], detail
    assert "auxtune worker" in detail["warning"]
    page_data = svc.get(f"/dashboard/studies/{sid}").json()
    assert page_data["warning"] == detail["warning"]
    unchanged = svc.get(f"/dashboard/studies/{sid}?since={page_data['version']}").json()
    assert unchanged.get("unchanged") and unchanged["warning"] == detail["warning"]  # the banner stays up
    html = httpx.get(f"{svc.base}/dashboard/studies/{sid}", timeout=10).text
    assert 'id="study-warning"' in html

    for args in ((str(sid), "--url", svc.base), ("lonely", "--db", url)):
        r = status_cli(*args)
        assert r.returncode == 0, r.stderr
        assert "no live worker can take this queued study" in r.stderr, (args, r.stdout, r.stderr)

    svc.start_worker()  # a worker by hand: the warning goes away once it is alive
    wait_for(lambda: "warning" not in svc.get(f"/studies/{sid}").json(), 60, "the warning to go away")
    assert svc.get(f"/studies/{sid}").json()["workers_alive"] == 1
    assert "no live worker" not in status_cli("lonely", "--db", url).stderr
