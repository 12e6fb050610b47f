"""``tuner.execution.supervisor``: a worker process that keeps dying is restarted after 1 s, then 2 s, … (capped),
with the
reason logged; stopping the supervisor ends the restarts. Real worker processes, a real SQLite store."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from storage import Store
from tuner.execution.supervisor import WorkerSupervisor


def test_a_worker_that_dies_again_and_again_is_backed_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'sup.db'}"
    Store(url).close()
    caplog.set_level(logging.WARNING, logger="tuner.execution.supervisor")
    # --threads 0 is refused by every worker at start: each one exits with code 2 at once.
    with WorkerSupervisor(url, 1, "--forever", "--threads", "0") as supervisor:
        deadline = time.monotonic() + 120
        while len(re.findall(r"restarting it in", caplog.text)) < 3:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.1)
    delays = [int(d) for d in re.findall(r"embedded worker 0 \(pid \d+\) exited with code 2 after \d+ s; "
                                         r"restarting it in (\d+) s", caplog.text)]
    assert delays[:3] == [1, 2, 4], caplog.text
    assert caplog.text.count("embedded worker 0 restarted") >= 2
    assert all(p.poll() is not None for p in supervisor.procs)  # stopped: nothing left running or restarting
