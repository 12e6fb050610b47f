"""Small factories for the API tests: specs, users, finished trials, tables to upload."""

from __future__ import annotations

import copy
import io
from typing import Any

import optuna
from fastapi.testclient import TestClient

from storage import Store

ADMIN_TOKEN = "axt_test-admin-token-of-the-api-tests"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
UPLOAD_LIMIT = 64 * 1024
STUDIES = "/api/v1/studies"
DATASETS = "/api/v1/datasets"

SPEC: dict[str, Any] = {
    "name": "demo",
    "workload": {"name": "synthetic", "params": {"n_train": 120}},
    "aux_tasks": [
        {"name": "helpful", "loss": "bce"},
        {"name": "harmful", "loss": "mse", "lambda": {"low": 0.0, "high": 2.0}},
        {"name": "neutral", "loss": "bce", "lambda": {"fixed": 0.25}},
    ],
    "search": {"algorithm": "random", "n_trials": 6, "seed": 0},
    "training": {"epochs": 3},
}


def spec(name: str = "demo", **changes: Any) -> dict[str, Any]:
    """The synthetic spec under ``name``, with top-level sections replaced by ``changes``."""
    out = copy.deepcopy(SPEC)
    out["name"] = name
    out.update(copy.deepcopy(changes))
    return out


def table_spec(name: str, data: str, attributes: str | None = None) -> dict[str, Any]:
    params = {"data": data, "label": "breed", **({"attributes": attributes} if attributes else {})}
    return {"name": name, "workload": {"name": "table", "params": params},
            "aux_tasks": [{"name": "large", "loss": "bce"}], "search": {"algorithm": "random", "n_trials": 4}}


def create_study(client: TestClient, name: str = "demo", headers: dict[str, str] = ADMIN, **changes: Any) -> dict:
    r = client.post(STUDIES, json=spec(name, **changes), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def user(client: TestClient, owner: str, admin: bool = False) -> dict[str, str]:
    """Bearer headers of a new token for ``owner`` (made by the admin through the API)."""
    r = client.post("/api/v1/tokens", json={"owner": owner, "is_admin": admin}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def suggest_all(trial: optuna.trial.Trial) -> dict[str, float]:
    return {"helpful": trial.suggest_float("helpful", 0.0, 2.0), "harmful": trial.suggest_float("harmful", 0.0, 2.0)}


def finish_trials(store: Store, study_id: int, values: list[float | None], worker: str = "w1") -> list[dict]:
    """Run trials the way a worker would (claim → sanity → epochs → finish); ``None`` fails the sanity gate."""
    done = []
    for value in values:
        claim = store.claim_trial(study_id, worker, suggest_all)
        assert claim is not None
        store.record_sanity(claim, {"passed": value is not None, "reason": "" if value is not None else "nan loss",
                                    "loss_drop": 0.8})
        if value is None:
            store.finish_trial(claim, "failed_sanity", reason="sanity gate: nan loss")
        else:
            for epoch in range(3):
                store.record_epoch(claim, epoch, {
                    "epoch": epoch, "train_loss": {"main": 1.0 - 0.1 * epoch, "helpful": 0.5},
                    "val_loss": {"main": 1.1 - 0.1 * epoch}, "val_accuracy": value - 0.01 * (2 - epoch),
                    "seconds": 0.1})
            store.finish_trial(claim, "complete", value, result={"best_epoch": 2})
        done.append({"number": claim.number, "params": claim.params, "value": value})
    return done


def csv_bytes(rows: int = 30, extra: dict[str, list[Any]] | None = None) -> bytes:
    lines = ["weight,large,breed"] + [f"{10 + i},{(i % 3) / 2},{'beagle' if i % 2 else 'husky'}" for i in range(rows)]
    if extra:
        header = lines[0] + "," + ",".join(extra)
        lines = [header] + [line + "," + ",".join(str(v[i]) for v in extra.values())
                            for i, line in enumerate(lines[1:])]
    return ("\n".join(lines) + "\n").encode()


def attributes_bytes() -> bytes:
    return b"breed,large\nbeagle,0.2\nhusky,0.8\n"


def parquet_bytes(rows: int = 30) -> bytes:
    import pandas as pd

    frame = pd.DataFrame({"weight": [float(i) for i in range(rows)], "large": [(i % 3) / 2 for i in range(rows)],
                          "breed": ["beagle" if i % 2 else "husky" for i in range(rows)]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def upload(client: TestClient, content: bytes, filename: str = "dogs.csv", label: str = "breed",
           headers: dict[str, str] = ADMIN) -> Any:
    return client.post(DATASETS, files={"file": (filename, content)}, data={"label": label}, headers=headers)
