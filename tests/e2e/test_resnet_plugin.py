"""examples/resnet-plugin end to end over REST, lr searched beside the λ: a plugin that brings its own module
(BatchNorm, custom heads) and its own SGD + cosine, registered through its ``auxtune.workloads`` entry point,
trained by real workers.

The shared environment is not touched: the example's package folder goes on PYTHONPATH of the service and its
workers, beside a ``.dist-info`` written from the example's pyproject.toml (what ``pip install`` would write), so
``importlib.metadata`` finds its entry point.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_service import ROOT, Service, wait_for
from tests.factories.images import images_spec, write_image_folder

EXAMPLE = ROOT / "examples" / "resnet-plugin"


def register(site: Path) -> None:
    """A ``.dist-info`` for the example under ``site``, with the entry points its pyproject.toml declares."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, points in project["entry-points"].items():
        lines += [f"[{group}]", *(f"{name} = {target}" for name, target in points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def test_the_resnet_plugin_study_runs_over_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    register(tmp_path / "site")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{EXAMPLE}:{tmp_path / 'site'}")
    monkeypatch.setenv("AUXTUNE_ALLOW_SERVER_PATHS", "true")  # the image folder is read where it was written
    monkeypatch.setenv("AUXTUNE_DATA_DIR", str(tmp_path / "data"))
    root, attributes = write_image_folder(tmp_path / "pets" / "images", per_class=12)
    doc = images_spec(root, attributes)
    doc.update(name="resnet", workload={**doc["workload"], "name": "resnet-images"},  # type: ignore[dict-item]
               affinity={"every": 3})
    doc["training"].update(lr=0.05, epochs=2)  # type: ignore[union-attr]
    doc["search"] = {**doc.get("search", {}), "params": {"lr": {"low": 0.01, "high": 0.1, "log": True}}}  # type: ignore[dict-item]
    svc = Service(f"sqlite:///{tmp_path / 'svc.db'}", 1)
    try:
        svc.start_api()
        refused = httpx.post(f"{svc.base}/api/v1/studies", json={**doc, "population": {"size": 2}}, timeout=30)
        assert refused.status_code == 422 and "population.size" in refused.text, refused.text
        r = httpx.post(f"{svc.base}/api/v1/studies", json=doc, timeout=30)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        wait_for(lambda: svc.get(f"/studies/{sid}").json()["status"] in ("done", "failed"), 240, "the study")
        study = svc.get(f"/studies/{sid}").json()
        assert study["status"] == "done", study
        trials = svc.get(f"/studies/{sid}/trials?limit=10").json()["data"]
        assert len(trials) == 2 and all(t["state"] == "complete" for t in trials), trials
        lrs = [t["lambdas"]["param.lr"] for t in trials]  # lr searched beside the λ (a trial param), one per trial
        assert all(0.01 <= lr <= 0.1 for lr in lrs) and lrs[0] != lrs[1], trials
        best = svc.get(f"/studies/{sid}/best").json()
        assert set(best["lambdas"]) == {"ear", "coat"} and best["value"] is not None, best
        assert best["params"]["lr"] in lrs, best
    finally:
        svc.close()
