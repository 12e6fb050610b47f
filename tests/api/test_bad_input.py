"""The bad-input catalog: every refusal gets the right 4xx, the shared error shape and a message naming the
field; no request yields a 5xx; and nothing stored changes because of a refused request."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from storage import Store
from storage._tokens import TokenModel
from tests.api.conftest import make_settings
from tests.api.factories import (
    ADMIN,
    DATASETS,
    STUDIES,
    UPLOAD_LIMIT,
    create_study,
    csv_bytes,
    finish_trials,
    spec,
    table_spec,
    upload,
    user,
)
from tests.spec_catalog import HOSTILE_SPECS

SEEDED, FRESH, ALICES = 1, 2, 3  # study ids made by the ``world`` fixture


@dataclass
class World:
    client: TestClient
    store: Store
    data_dir: Path
    headers: dict[str, dict[str, str]]
    alice_dataset: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("catalog"))
    with TestClient(create_app(settings)) as client:
        store: Store = client.app.state.store  # type: ignore[attr-defined]
        alice, bob = user(client, "alice"), user(client, "bob")
        assert create_study(client, "seeded")["id"] == SEEDED
        assert create_study(client, "fresh")["id"] == FRESH
        assert create_study(client, "alices", headers=alice)["id"] == ALICES
        finish_trials(store, SEEDED, [0.6, 0.7])
        finish_trials(store, ALICES, [0.5])
        dataset = upload(client, csv_bytes(), headers=alice).json()["id"]
        yield World(client, store, settings.data_dir, {"admin": ADMIN, "alice": alice, "bob": bob, "none": {}},
                    dataset)


def snapshot(w: World) -> dict[str, Any]:
    """Everything a refused request must leave as it was: studies, trials, metrics, datasets, tokens."""
    c = w.client
    studies = c.get(STUDIES, params={"limit": 1000}, headers=ADMIN).json()
    out: dict[str, Any] = {"studies": studies, "metrics": c.get("/metrics").text,
                           "files": sorted(p.name for p in w.data_dir.iterdir())}
    for s in studies["data"]:
        out[f"study {s['id']}"] = c.get(f"{STUDIES}/{s['id']}", headers=ADMIN).json()
        out[f"trials {s['id']}"] = c.get(f"{STUDIES}/{s['id']}/trials", headers=ADMIN).json()
    with w.store.session() as session:
        out["tokens"] = session.scalar(select(func.count()).select_from(TokenModel))
    return out


@dataclass
class Case:
    id: str
    method: str
    path: str
    status: int
    loc: list[str | int]
    words: tuple[str, ...] = ()
    who: str = "admin"
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    params: dict[str, Any] = field(default_factory=dict)


def _spec(**changes: Any) -> dict[str, Any]:
    return spec("new-study", **changes)


def _task(**lam: Any) -> list[dict[str, Any]]:
    return [{"name": "helpful", "loss": "bce", "lambda": lam}]


def _without(section: str) -> dict[str, Any]:
    out = copy.deepcopy(_spec())
    out.pop(section)
    return out


def _upload(content: bytes, filename: str = "t.csv", label: str = "breed") -> dict[str, Any]:
    return {"files": {"file": (filename, content)}, "data": {"label": label}}


BODY = ["body"]
SPEC_TEXT = "/api/v1/dashboard/spec"
S = f"{STUDIES}/{{id}}"
CASES = [
    # -- the spec: malformed JSON, wrong types, λ out of range, unknown names ----------------------------------
    Case("malformed JSON", "POST", STUDIES, 422, BODY, ("malformed JSON",), content=b'{"name": "x",',
         content_type="application/json"),
    Case("empty body", "POST", STUDIES, 422, BODY, ("JSON object",), content=b"", content_type="application/json"),
    Case("body not an object", "POST", STUDIES, 422, BODY, ("JSON object",), json=[1, 2]),
    Case("body not JSON", "POST", STUDIES, 422, BODY, ("JSON object",), content=b"name: x", content_type="text/yaml"),
    Case("n_trials not an integer", "POST", STUDIES, 422, ["body", "search", "n_trials"], ("integer",),
         json=_spec(search={"n_trials": "many"})),
    Case("aux_tasks not a list", "POST", STUDIES, 422, ["body", "aux_tasks"], ("list",),
         json=_spec(aux_tasks="helpful")),
    Case("workload not an object", "POST", STUDIES, 422, ["body", "workload"], (), json=_spec(workload="synthetic")),
    Case("workload missing", "POST", STUDIES, 422, ["body", "workload"], ("required",), json=_without("workload")),
    Case("λ below zero", "POST", STUDIES, 422, ["body", "aux_tasks", 0, "lambda", "low"], ("greater than or equal",),
         json=_spec(aux_tasks=_task(low=-1))),
    Case("λ bounds inverted", "POST", STUDIES, 422, ["body", "aux_tasks", 0, "lambda"], ("must be ≤ high",),
         json=_spec(aux_tasks=_task(low=3, high=1))),
    Case("λ log scale from zero", "POST", STUDIES, 422, ["body", "aux_tasks", 0, "lambda"], ("low > 0",),
         json=_spec(aux_tasks=_task(low=0, high=1, log=True))),
    Case("λ fixed below zero", "POST", STUDIES, 422, ["body", "aux_tasks", 0, "lambda", "fixed"], (),
         json=_spec(aux_tasks=_task(fixed=-0.5))),
    Case("no λ to search", "POST", STUDIES, 422, ["body", "aux_tasks"], ("no λ to search",),
         json=_spec(aux_tasks=_task(fixed=1.0))),
    Case("λ infinite", "POST", STUDIES, 422, ["body", "aux_tasks", 0, "lambda", "high"], ("finite",),
         content=b'{"name": "n", "workload": {"name": "synthetic"}, "aux_tasks": [{"name": "helpful", "loss": "bce",'
                 b' "lambda": {"high": Infinity}}]}', content_type="application/json"),
    Case("search.params unknown name", "POST", STUDIES, 422, ["body", "search", "params", "dropout"],
         ("allowed: ['lr', 'weight_decay', 'batch_size', 'hidden']",),
         json=_spec(search={"params": {"dropout": {"low": 0, "high": 0.5}}})),
    Case("search.params choices for cmaes", "POST", STUDIES, 422, ["body", "search", "params", "batch_size"],
         ("cannot search choices",), json=_spec(search={"algorithm": "cmaes",
                                                        "params": {"batch_size": {"choices": [32, 64]}}})),
    Case("n_trials beyond the store", "POST", STUDIES, 422, ["body", "search", "n_trials"], ("less than or equal",),
         json=_spec(search={"n_trials": 2**40})),
    Case("integer beyond 64 bits", "POST", STUDIES, 422, ["body", "workload", "params", "n_train"], ("too large",),
         json=_spec(workload={"name": "synthetic", "params": {"n_train": 10**30}})),
    Case("integer past 4300 digits", "POST", STUDIES, 400, BODY, ("4300 digits",),
         content=b'{"name": "n", "workload": {"name": "synthetic"}, "search": {"seed": ' + b"9" * 5000 + b"}}",
         content_type="application/json"),
    Case("JSON nested too deeply", "POST", STUDIES, 400, BODY, ("too deep",),
         content=b"[" * 30_000 + b"]" * 30_000, content_type="application/json"),
    *[Case(f"hostile spec: {c.id}", "POST", STUDIES, 422, ["body", *c.loc_list], c.words,
           content=json.dumps(c.apply(_spec())).encode(), content_type="application/json")  # json.dumps: NaN too
      for c in HOSTILE_SPECS],
    Case("pasted spec with a huge hex number", "POST", SPEC_TEXT, 422, ["body", "search", "seed"],
         ("line 3", "too large"), content=b"name: n\nsearch:\n  seed: 0x" + b"f" * 5000, content_type="text/yaml"),
    Case("pasted spec with a huge decimal number", "POST", SPEC_TEXT, 422, BODY, ("4300 digits",),
         content=b"name: n\nbig: " + b"9" * 5000, content_type="text/yaml"),
    Case("pasted spec with a huge number as a key", "POST", SPEC_TEXT, 422, BODY, ("huge number",),
         content=b"name: n\n? 0x" + b"f" * 5000 + b"\n: 1\n", content_type="text/yaml"),
    Case("pasted spec with a date that is not one", "POST", SPEC_TEXT, 422, BODY, ("cannot be read",),
         content=b"name: 2024-13-45\n", content_type="text/yaml"),
    Case("pasted spec nested too deeply", "POST", SPEC_TEXT, 422, BODY, ("nested too deeply",),
         content=b"a: " + b"[" * 20_000 + b"]" * 20_000, content_type="text/yaml"),
    Case("unknown workload", "POST", STUDIES, 422, ["body", "workload", "name"], ("unknown workload", "registered"),
         json=_spec(workload={"name": "imagenet"})),
    Case("unknown workload param", "POST", STUDIES, 422, ["body", "workload", "params", "n_rows"], ("unknown param",),
         json=_spec(workload={"name": "synthetic", "params": {"n_rows": 5}})),
    Case("unknown aux task", "POST", STUDIES, 422, ["body", "aux_tasks", 0, "name"], ("available",),
         json=_spec(aux_tasks=[{"name": "tail", "loss": "bce"}])),
    Case("loss does not fit task", "POST", STUDIES, 422, ["body", "aux_tasks", 0, "loss"], ("mse",),
         json=_spec(aux_tasks=[{"name": "harmful", "loss": "bce"}])),
    Case("unknown field", "POST", STUDIES, 422, ["body", "serch"], ("unknown field",), json={**_spec(), "serch": {}}),
    Case("unknown algorithm", "POST", STUDIES, 422, ["body", "search", "algorithm"], ("allowed",),
         json=_spec(search={"algorithm": "sgd"})),
    Case("bad study name", "POST", STUDIES, 422, ["body", "name"], (), json=spec("has space")),
    Case("name taken", "POST", STUDIES, 409, ["body", "name"], ("already exists",), json=spec("seeded")),
    Case("spec body too large", "POST", STUDIES, 413, BODY, ("too large",),
         json={**_spec(), "padding": "x" * 100_000}),
    # -- unknown ids, bad path and query values ---------------------------------------------------------------
    *[Case(f"unknown study ({m} {p})", m, p.format(id=999), 404, ["path", "study_id"], ("no study with id 999",))
      for m, p in [("GET", S), ("GET", S + "/best"), ("GET", S + "/trials"), ("GET", S + "/trials/0"),
                   ("POST", S + "/pause"), ("POST", S + "/resume"), ("POST", S + "/cancel"), ("DELETE", S)]],
    Case("study id not a number", "GET", f"{STUDIES}/abc", 422, ["path", "study_id"], ("integer",)),
    Case("study id zero", "GET", f"{STUDIES}/0", 422, ["path", "study_id"], ()),
    Case("study id too large", "GET", f"{STUDIES}/{10**30}", 422, ["path", "study_id"], ()),
    Case("unknown trial", "GET", f"{STUDIES}/{SEEDED}/trials/42", 404, ["path", "number"], ("no trial number 42",)),
    Case("trial number negative", "GET", f"{STUDIES}/{SEEDED}/trials/-1", 422, ["path", "number"], ()),
    Case("unknown status filter", "GET", STUDIES, 422, ["query", "status"], ("allowed", "paused"),
         params={"status": "sleeping"}),
    Case("limit zero", "GET", STUDIES, 422, ["query", "limit"], (), params={"limit": 0}),
    Case("offset huge", "GET", f"{STUDIES}/{SEEDED}/trials", 422, ["query", "offset"], (), params={"offset": 10**20}),
    Case("unknown trial state", "GET", f"{STUDIES}/{SEEDED}/trials", 422, ["query", "state", 0], ("allowed",),
         params={"state": "lost"}),
    # -- state conflicts -------------------------------------------------------------------------------------
    Case("best before any result", "GET", f"{STUDIES}/{FRESH}/best", 409, ["path", "study_id"],
         ("no completed trial yet",)),
    Case("resume a queued study", "POST", f"{STUDIES}/{FRESH}/resume", 409, ["path", "study_id"], ("paused",)),
    Case("delete an active study", "DELETE", f"{STUDIES}/{FRESH}", 409, ["path", "study_id"], ("cancel it first",)),
    # -- uploads ---------------------------------------------------------------------------------------------
    Case("oversized upload", "POST", DATASETS, 413, BODY, ("too large",), **_upload(b"1," * UPLOAD_LIMIT)),
    Case("non-numeric CSV", "POST", DATASETS, 422, ["body", "file"], ("not numeric", "color"),
         **_upload(csv_bytes(extra={"color": ["red", "blue"] * 15}))),
    Case("CSV with empty cells", "POST", DATASETS, 422, ["body", "file"], ("empty cells", "weight"),
         **_upload(b"weight,breed\n1,a\n,b\n")),
    Case("unparsable CSV", "POST", DATASETS, 422, ["body", "file"], ("cannot read",),
         **_upload(b"weight,breed\n1,a\n3,4,5,6,7\n")),
    Case("binary garbage as CSV", "POST", DATASETS, 422, ["body", "file"], ("cannot read",),
         **_upload(b"\xff\xfe\x00garbage\x00")),
    Case("unparsable Parquet", "POST", DATASETS, 422, ["body", "file"], ("cannot read",),
         **_upload(b"PAR1 not really", "t.parquet")),
    Case("empty CSV", "POST", DATASETS, 422, ["body", "file"], ("no data rows",), **_upload(b"weight,breed\n")),
    Case("unsupported format", "POST", DATASETS, 422, ["body", "file"], (".csv or .parquet",),
         **_upload(csv_bytes(), "t.xlsx")),
    Case("label column missing", "POST", DATASETS, 422, ["body", "label"], ("'kind' is not in",),
         **_upload(csv_bytes(), label="kind")),
    Case("no file field", "POST", DATASETS, 422, ["body", "file"], ("required",), data={"label": "breed"}),
    Case("unknown dataset in spec", "POST", STUDIES, 422, ["body", "workload", "params", "data"], ("no dataset",),
         json=table_spec("t", "dataset:" + "f" * 32)),
    Case("server path in spec", "POST", STUDIES, 422, ["body", "workload", "params", "data"], ("dataset:<id>",),
         json=table_spec("t", "/etc/passwd")),
    Case("unknown dataset", "GET", f"{DATASETS}/{'f' * 32}", 404, ["path", "dataset_id"], ("no dataset",)),
    Case("malformed dataset id", "GET", f"{DATASETS}/..etc", 422, ["path", "dataset_id"], ()),
    # -- tokens and owners -----------------------------------------------------------------------------------
    Case("missing token (submit)", "POST", STUDIES, 401, ["header", "Authorization"], ("bearer token",), who="none",
         json=_spec()),
    Case("missing token (best)", "GET", f"{STUDIES}/{SEEDED}/best", 401, ["header", "Authorization"], (), who="none"),
    Case("missing token (upload)", "POST", DATASETS, 401, ["header", "Authorization"], (), who="none",
         **_upload(csv_bytes())),
    Case("unknown token", "GET", f"{STUDIES}/{SEEDED}", 401, ["header", "Authorization"], ("unknown token",),
         who="wrong"),
    *[Case(f"other owner's study ({m} {p})", m, p.format(id=ALICES), 403, ["path", "study_id"], ("another owner",),
           who="bob")
      for m, p in [("GET", S), ("GET", S + "/best"), ("GET", S + "/trials"), ("GET", S + "/trials/0"),
                   ("POST", S + "/pause"), ("POST", S + "/cancel"), ("DELETE", S)]],
    Case("other owner's dataset", "GET", f"{DATASETS}/{{alice_dataset}}", 403, ["path", "dataset_id"],
         ("another owner",), who="bob"),
    Case("other owner's dataset in a spec", "POST", STUDIES, 403, ["body", "workload", "params", "data"],
         ("another owner",), who="bob", json=table_spec("t", "dataset:{alice_dataset}")),
    Case("token by a non-admin", "POST", "/api/v1/tokens", 403, ["header", "Authorization"], ("admin",), who="bob",
         json={"owner": "eve"}),
    Case("token owner malformed", "POST", "/api/v1/tokens", 422, ["body", "owner"], (), json={"owner": ""}),
    # -- the API itself --------------------------------------------------------------------------------------
    Case("unknown endpoint", "GET", "/api/v1/experiments", 404, [], ("no such endpoint",)),
    Case("wrong method", "PUT", STUDIES, 405, [], ("method not allowed",)),
]


def _fill(value: Any, w: World) -> Any:
    if isinstance(value, str):
        return value.replace("{alice_dataset}", w.alice_dataset)
    if isinstance(value, dict):
        return {k: _fill(v, w) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, w) for v in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_refused_request_gets_a_4xx_naming_the_field_and_changes_nothing(world: World, case: Case) -> None:
    before = snapshot(world)
    headers = dict(world.headers.get(case.who, {"Authorization": "Bearer axt_wrong"}))
    if case.content_type:
        headers["Content-Type"] = case.content_type
    r = world.client.request(case.method, _fill(case.path, world), headers=headers, json=_fill(case.json, world),
                             content=case.content, files=case.files, data=case.data, params=case.params)
    assert r.status_code == case.status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail and all({"loc", "msg", "type"} <= set(d) for d in detail), detail
    assert detail[0]["loc"] == case.loc, detail
    for words in case.words:
        assert words.lower() in detail[0]["msg"].lower(), detail
    assert snapshot(world) == before


def test_no_request_to_any_route_yields_a_5xx(world: World) -> None:
    """Every route × odd path values × with and without a token × odd bodies: always below 500."""
    odd_values = ["0", "1", "-1", "abc", str(2**70), "%00", "1e3", "f" * 32]
    bodies: list[dict[str, Any]] = [{}, {"json": None}, {"json": [1]}, {"json": {"name": 5}},
                                    {"content": b"\xff\x00", "headers": {"Content-Type": "application/json"}},
                                    {"files": {"file": ("x.csv", b"a\n1\n")}}]
    before = snapshot(world)
    seen = 0
    paths = world.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    assert len(paths) >= 12
    for path, operations in paths.items():
        for method in (m.upper() for m in operations):
            for value in odd_values:
                url = path.replace("{study_id}", value).replace("{number}", value).replace("{dataset_id}", value)
                for who in ("bob", "none"):
                    for body in bodies if method == "POST" else [{}]:
                        headers = {**world.headers[who], **body.get("headers", {})}
                        extra = {k: v for k, v in body.items() if k != "headers"}
                        r = world.client.request(method, url, headers=headers, **extra)
                        assert r.status_code < 500, (method, url, who, body, r.text)
                        seen += 1
    assert seen > 300
    assert snapshot(world) == before


def test_a_grid_bomb_is_refused_at_once(world: World) -> None:
    """A million values per λ over 2 λ: the API once built the 10¹² points to count them and was OOM-killed."""
    for points in (1_000_000, 2000):  # past the field's bound; within it, past the grid's size
        started = time.monotonic()
        r = world.client.post(STUDIES, json=_spec(search={"algorithm": "grid", "grid_points": points}), headers=ADMIN)
        assert time.monotonic() - started < 2, points
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "search", "grid_points"], r.text
