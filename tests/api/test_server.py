"""End to end over real HTTP: uvicorn in its own process on a loopback port, a SQLite file, httpx.

The first start prints the admin token once; the client uses it to submit a study, upload a dataset, read
studies and metrics. The server is then stopped and started again (as ``uvicorn api.main:app``, configured
only from the environment): nothing is lost and no second token is printed.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.api.factories import csv_bytes, spec, table_spec

ROOT = Path(__file__).resolve().parents[2]
TOKEN_LINE = re.compile(r"created the first admin token .*: (axt_\S+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(args: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    args = [a.replace("{port}", str(port)) for a in args]
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_real_server_over_http_keeps_everything_across_a_restart(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env.update(AUXTUNE_DB=f"sqlite:///{tmp_path / 'e2e.db'}", AUXTUNE_DATA_DIR=str(tmp_path / "data"))
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"

    with server(["-m", "api", "--host", "127.0.0.1", "--port", "{port}"], env, first_log) as url:
        found = TOKEN_LINE.search(first_log.read_text())
        assert found, first_log.read_text()
        auth = {"Authorization": f"Bearer {found.group(1)}"}
        with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
            assert httpx.post(f"{url}/api/v1/studies", json=spec("e2e")).status_code == 401
            created = http.post("/api/v1/studies", json=spec("e2e"))
            assert created.status_code == 201 and created.json()["status"] == "queued"
            sid = created.json()["id"]
            assert http.post("/api/v1/studies", json=spec("e2e")).status_code == 409
            bad = http.post("/api/v1/studies", content=b"{", headers={"Content-Type": "application/json"})
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body"]
            best = http.get(f"/api/v1/studies/{sid}/best")
            assert best.status_code == 409 and "no completed trial" in best.json()["detail"][0]["msg"]
            ref = http.post("/api/v1/datasets", files={"file": ("dogs.csv", csv_bytes())},
                            data={"label": "breed"}).json()["reference"]
            assert http.post("/api/v1/studies", json=table_spec("dogs", ref)).status_code == 201
            assert http.post(f"/api/v1/studies/{sid}/pause").json()["status"] == "paused"
            assert 'auxtune_studies{status="paused"} 1' in http.get("/metrics").text
            before = http.get("/api/v1/studies").json()
            assert before["count"] == 2
            assert http.get("/docs").status_code == 200

    with server(["-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", "{port}"], env, second_log) as url:
        assert "admin token" not in second_log.read_text()
        with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
            assert http.get("/api/v1/studies").json() == before
            assert http.post(f"/api/v1/studies/{sid}/resume").json()["status"] == "queued"


def test_without_tokens_only_this_machines_pages_may_call(tmp_path: Path) -> None:
    """``--no-auth`` over real HTTP: a cross-site form POST (``Origin: http://evil.example``) and a DNS-rebound
    name in ``Host`` get a 403 naming the header; the same requests from this server's own pages go through."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env.update(AUXTUNE_DB=f"sqlite:///{tmp_path / 'open.db'}", AUXTUNE_DATA_DIR=str(tmp_path / "data"))
    with server(["-m", "api", "--port", "{port}", "--no-auth"], env, tmp_path / "server.log") as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        sid = http.post("/api/v1/studies", json=spec("open")).json()["id"]
        port = url.rsplit(":", 1)[1]
        form = {"Content-Type": "application/x-www-form-urlencoded"}

        r = http.post(f"/api/v1/studies/{sid}/pause", content=b"", headers={**form, "Origin": "http://evil.example"})
        assert r.status_code == 403 and r.json()["detail"][0]["loc"] == ["header", "Origin"], r.text
        assert "evil.example" in r.json()["detail"][0]["msg"]
        assert http.get(f"/api/v1/studies/{sid}").json()["status"] == "queued"  # nothing changed
        for host in (f"evil.example:{port}", "evil.example"):
            r = http.get("/api/v1/studies", headers={"Host": host})
            assert r.status_code == 403 and r.json()["detail"][0]["loc"] == ["header", "Host"], r.text

        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            assert http.get("/api/v1/studies", headers={"Host": host}).status_code == 200
        r = http.post(f"/api/v1/studies/{sid}/pause", headers={"Origin": f"http://127.0.0.1:{port}"})
        assert r.status_code == 200 and r.json()["status"] == "paused"
