"""``affinity``, ``confirm``, ``best`` and ``report`` say the same from a service (--url) as from its store (--db).

A real ``auxtune serve`` (uvicorn and one embedded worker process) on a SQLite file runs a small study; with --url
the CLI asks it over HTTP (and ``confirm`` follows the service's worker through the runs), with --db it reads the
same file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from api.client import AuxtuneClient
from tests.api.test_server import server
from tests.e2e.test_service import wait_for

ROOT = Path(__file__).resolve().parents[3]
NAME = "remote-trust"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}


def auxtune(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=_env())


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = tmp_path_factory.mktemp("source")
    db = f"sqlite:///{root / 's.db'}"
    with server(["-m", "tuner.cli", "serve", "--port", "{port}", "--db", db, "--no-auth", "--workers", "1",
                 "--threads", "1"], _env(), root / "serve.log") as url:
        yield url, db


def test_trust_commands_over_http_match_the_store(service: tuple[str, str], tmp_path: Path) -> None:
    url, db = service
    spec = {"name": NAME, "workload": {"name": "synthetic", "params": {"n_train": 120, "n_test": 300}},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}], "search": {"algorithm": "random", "n_trials": 3},
            "training": {"epochs": 2}, "affinity": {"every": 2}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    submitted = auxtune("submit", str(path), "--url", url)
    assert submitted.returncode == 0, submitted.stderr
    with AuxtuneClient(url) as client:
        sid = client.find_study(NAME)["id"]
        wait_for(lambda: client.study(sid)["status"] == "done", 180, "the search")

    for args in (["affinity", NAME, "--json"], ["affinity", NAME]):
        remote, local = auxtune(*args, "--url", url), auxtune(*args, "--db", db)
        assert remote.returncode == 0 and local.returncode == 0, remote.stderr + local.stderr
        assert remote.stdout == local.stdout
        if "--json" in args:
            assert json.loads(local.stdout)["ranking"] == ["helpful"]

    confirmed = auxtune("confirm", NAME, "--url", url, "--seeds", "2", "--json")  # the service's worker runs them
    assert confirmed.returncode == 0, confirmed.stderr
    report = json.loads(confirmed.stdout)
    assert report["state"] == "complete" and report["counts"]["complete"] == 4
    stored = auxtune("confirm", NAME, "--db", db, "--seeds", "2", "--json")  # all stored: nothing to run
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout) == report
    shown = auxtune("confirm", NAME, "--url", url, "--seeds", "2")
    assert shown.returncode == 0 and shown.stdout == auxtune("confirm", NAME, "--db", db, "--seeds", "2").stdout
    assert "differences on test_accuracy" in shown.stdout

    remote, local = auxtune("best", str(sid), "--url", url, "--json"), auxtune("best", str(sid), "--db", db, "--json")
    assert remote.returncode == 0 and local.returncode == 0, remote.stderr + local.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert json.loads(local.stdout)["confirmation"]["seeds"] == 2
    shown = auxtune("best", NAME, "--url", url)
    assert shown.returncode == 0 and shown.stdout == auxtune("best", NAME, "--db", db).stdout
    assert "best λ vs baseline on test_accuracy" in shown.stdout

    written = auxtune("report", NAME, "--url", url, "-o", str(tmp_path / "r.html"))
    assert written.returncode == 0 and (tmp_path / "r.html").read_text().startswith("<!")

    unknown = auxtune("confirm", "no-such-study", "--url", url)
    assert unknown.returncode == 2 and "no study named 'no-such-study'" in unknown.stderr
    both = auxtune("affinity", NAME, "--url", url, "--db", db)
    assert both.returncode == 2 and "not both" in both.stderr
