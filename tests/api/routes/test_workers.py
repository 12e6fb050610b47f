"""``/api/v1/workers``: registered workers, alive or not, and what they run."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from storage import Store
from storage.models import WorkerModel
from tests.api.factories import ADMIN, create_study, suggest_all


def test_workers_show_host_device_current_trial_and_liveness(client: TestClient, store: Store) -> None:
    sid = create_study(client)["id"]
    h200 = {"index": 2, "name": "NVIDIA H200", "memory_bytes": 150_000_000_000}  # GPU 2 of node-a, seen as cuda:0
    store.register_worker("gpu-0", "node-a", "cuda:0", 4242, h200)
    store.register_worker("cpu-0", "node-b", "cpu", 77)
    claim = store.claim_trial(sid, "gpu-0", suggest_all)
    assert claim is not None
    with store.session() as session:  # cpu-0 went quiet two minutes ago
        session.execute(update(WorkerModel).where(WorkerModel.id == "cpu-0")
                        .values(last_heartbeat_at=datetime.now(UTC) - timedelta(minutes=2)))
    assert client.get("/api/v1/workers").status_code == 401
    workers = {w["id"]: w for w in client.get("/api/v1/workers", headers=ADMIN).json()["data"]}
    assert workers["gpu-0"]["host"] == "node-a" and workers["gpu-0"]["device"] == "cuda:0"
    assert workers["gpu-0"]["gpu"] == h200
    assert workers["gpu-0"]["device_label"] == "GPU 2 (NVIDIA H200, 140 GiB) as cuda:0"
    assert workers["cpu-0"]["gpu"] is None and workers["cpu-0"]["device_label"] == "cpu"
    assert workers["gpu-0"]["current_study_id"] == sid and workers["gpu-0"]["current_trial"] == claim.number
    assert workers["gpu-0"]["alive"] is True and workers["cpu-0"]["alive"] is False
    assert "auxtune_workers_alive 1\n" in client.get("/metrics").text


def test_a_worker_on_this_host_whose_process_is_gone_is_dead_at_once(client: TestClient, store: Store) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    store.register_worker("here-0", socket.gethostname(), "cpu", proc.pid)  # it beat just now

    def alive() -> bool:
        return {w["id"]: w["alive"] for w in client.get("/api/v1/workers", headers=ADMIN).json()["data"]}["here-0"]

    assert alive() is True
    proc.kill()  # not reaped yet: a zombie, whose pid still answers a signal
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert alive() is False
    proc.wait()
    assert alive() is False
    assert "auxtune_workers_alive 0\n" in client.get("/metrics").text
