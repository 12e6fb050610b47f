"""Concurrent submissions against a real uvicorn on a real PostgreSQL (issue #14, point 6).

Creating a study runs in the store's catalog section. Waiters for that section must not hold connections of
the pool the holder needs, or a burst of POSTs exhausts the pool: the holder then times out (500) and every
other request of the process waits for a connection too.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx

from tests.api.factories import ADMIN, ADMIN_TOKEN, STUDIES, spec
from tests.api.test_server import server

N_POSTS = 20
#: An unrelated GET during the burst: a few round trips of work, so anything near a second means it queued.
GET_BUDGET_S = 2.0


def test_a_burst_of_submissions_on_postgres_neither_fails_nor_stalls_other_requests(
        fresh_pg_database_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env.update(AUXTUNE_DB=fresh_pg_database_url, AUXTUNE_DATA_DIR=str(tmp_path / "data"),
               AUXTUNE_ADMIN_TOKEN=ADMIN_TOKEN)
    with server(["-m", "api", "--host", "127.0.0.1", "--port", "{port}", "--log-level", "warning"], env,
                tmp_path / "server.log") as url:
        go = threading.Barrier(N_POSTS + 1)
        codes: dict[str, int] = {}

        def post(name: str) -> None:
            with httpx.Client(base_url=url, headers=ADMIN, timeout=120) as http:
                go.wait()
                codes[name] = http.post(STUDIES, json=spec(name)).status_code

        names = [f"burst-{i}" for i in range(N_POSTS)]
        posters = [threading.Thread(target=post, args=(name,)) for name in names]
        for t in posters:
            t.start()
        gets: list[tuple[int, float]] = []  # (status, seconds) of each unrelated read
        with httpx.Client(base_url=url, headers=ADMIN, timeout=120) as http:
            go.wait()
            while any(t.is_alive() for t in posters):  # unrelated reads, for as long as the burst lasts
                started = time.monotonic()
                code = http.get("/healthz").status_code
                gets.append((code, time.monotonic() - started))
            for t in posters:
                t.join()
            stored = http.get(STUDIES, params={"limit": 1000}).json()
        assert codes == {name: 201 for name in names}, (codes, (tmp_path / "server.log").read_text()[-3000:])
        assert sorted(s["name"] for s in stored["data"]) == sorted(names)  # each created once
        assert gets and all(code == 200 and seconds < GET_BUDGET_S for code, seconds in gets), gets
