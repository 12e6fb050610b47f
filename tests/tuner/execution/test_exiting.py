"""``tuner.execution.exiting``: a command ends without the interpreter's teardown, yet loses nothing an exit must
keep."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuner.execution.exiting import exit_code

ROOT = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=ENV)


@pytest.mark.parametrize(("code", "status"), [(None, 0), (0, 0), (3, 3), ("a message", 1)])
def test_exit_codes_are_the_interpreters(code: object, status: int) -> None:
    assert exit_code(code) == status


def test_atexit_handlers_run_and_buffered_output_is_written() -> None:
    done = python("import atexit, sys\n"
                  "from tuner.execution.exiting import exit_now\n"
                  "atexit.register(lambda: print('atexit ran'))\n"
                  "print('buffered', end=' '); sys.stderr.write('to stderr')\n"
                  "exit_now(3)\n"
                  "print('never')")
    assert done.returncode == 3
    assert done.stdout == "buffered atexit ran\n"
    assert done.stderr == "to stderr"


def test_a_message_goes_to_stderr_with_status_1() -> None:
    done = python("from tuner.execution.exiting import exit_now\nexit_now('bad input')")
    assert (done.returncode, done.stderr) == (1, "bad input\n")


def test_a_running_thread_that_is_not_a_daemon_is_waited_for() -> None:
    done = python("import threading, time\n"
                  "from tuner.execution.exiting import exit_now\n"
                  "threading.Thread(target=lambda: (time.sleep(0.3), print('thread finished', flush=True))).start()\n"
                  "exit_now(0)")
    assert (done.returncode, done.stdout) == (0, "thread finished\n")


def test_auxtune_run_exits_with_its_output_written_and_the_sqlite_store_closed(tmp_path: Path) -> None:
    spec = {"name": "exiting", "workload": {"name": "synthetic", "params": {"n_train": 64}},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}],
            "search": {"algorithm": "random", "n_trials": 2, "seed": 0, "controls": False},
            "training": {"epochs": 2, "batch_size": 32, "device": "cpu"}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    db = tmp_path / "store.db"
    done = subprocess.run([sys.executable, "-m", "tuner.cli", "run", str(tmp_path / "spec.yaml"), "--db",
                           f"sqlite:///{db}"], capture_output=True, text=True, timeout=300, env=ENV, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "done: 2 trials" in done.stdout
    # Every connection was closed (the last close checkpoints SQLite's write-ahead log and removes it).
    assert db.exists() and not Path(f"{db}-wal").exists()
    again = subprocess.run([sys.executable, "-m", "tuner.cli", "run", str(tmp_path / "missing.yaml")],
                           capture_output=True, text=True, timeout=120, env=ENV, cwd=tmp_path)
    assert again.returncode == 2 and "missing.yaml" in again.stderr
