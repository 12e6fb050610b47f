"""The API never imports torch (data flows api → storage ← tuner), even while it checks and stores specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
from fastapi.testclient import TestClient
from api.config import Settings
from api.main import create_app
from tests.api.factories import ADMIN, ADMIN_TOKEN, csv_bytes, spec, table_spec, upload

root = sys.argv[1]
settings = Settings(db=f"sqlite:///{root}/t.db", admin_token=ADMIN_TOKEN, data_dir=f"{root}/data")
with TestClient(create_app(settings)) as c:
    assert c.post("/api/v1/studies", json=spec("a"), headers=ADMIN).status_code == 201
    ref = upload(c, csv_bytes()).json()["reference"]
    assert c.post("/api/v1/studies", json=table_spec("t", ref), headers=ADMIN).status_code == 201
    for algorithm in ("gp", "ax", "cmaes", "qmc", "grid", "tpe"):
        r = c.post("/api/v1/studies", json=spec(algorithm, search={"algorithm": algorithm}), headers=ADMIN)
        assert r.status_code == 201, r.text
    assert c.get("/api/v1/workloads").status_code == 200
    assert c.get("/api/v1/studies/1/trials/0", headers=ADMIN).status_code == 200
    assert c.get("/metrics").status_code == 200
heavy = sorted(m for m in ("torch", "ax", "botorch") if m in sys.modules)
print(heavy)
assert not heavy, heavy
"""


def test_serving_requests_imports_no_torch(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
