"""``api.client`` and the CLI verbs ``submit``, ``status``, ``best --url`` against a real server over HTTP.

The server is ``python -m api`` (uvicorn) in its own process on a loopback port with a SQLite file; the test
finishes trials through the store directly (claim → finish, as a worker would), so no training runs here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api.client import ApiError, AuxtuneClient, error_line
from storage import Store
from tests.api.factories import ADMIN_TOKEN, attributes_bytes, csv_bytes, finish_trials, spec
from tests.api.routes.test_pareto import finish as finish_vectors
from tests.api.test_server import free_port, server
from tests.factories.images import images_spec, write_image_folder

ROOT = Path(__file__).resolve().parents[2]


class Service:
    def __init__(self, url: str, db: str, data_dir: Path) -> None:
        self.url, self.db, self.data_dir = url, db, data_dir

    def finish(self, study_id: int, values: list[float | None]) -> list[dict[str, Any]]:
        store = Store(self.db)
        try:
            return finish_trials(store, study_id, values, worker="w-test")
        finally:
            store.close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("client-server")
    db = f"sqlite:///{root / 'x.db'}"
    env = _env(AUXTUNE_DATA_DIR=str(root / "data"))
    with server(["-m", "api", "--port", "{port}", "--db", db, "--no-auth"], env, root / "server.log") as url:
        yield Service(url, db, root / "data")


@pytest.fixture
def client(service: Service) -> Iterator[AuxtuneClient]:
    with AuxtuneClient(service.url) as c:
        yield c


def auxtune(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tuner.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env if env is not None else _env())


def write_spec(folder: Path, document: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


# -- the client ------------------------------------------------------------------------------------------------
def test_the_client_drives_a_study_through_its_life(client: AuxtuneClient, service: Service) -> None:
    assert client.health() == {"status": "ok", "database": "ok"}
    assert "synthetic" in {w["name"] for w in client.workloads()["data"]}
    created = client.submit(spec("life"))
    sid = created["id"]
    assert created["status"] == "queued" and created["name"] == "life"
    assert sid in [s["id"] for s in client.studies(status="queued", limit=1000)["data"]]
    assert client.studies(status="done")["count"] == 0
    assert client.find_study("life")["id"] == sid and client.find_study(str(sid))["name"] == "life"
    detail = client.study(sid)
    assert detail["counts"]["queued"] == 2 and detail["best"] is None
    assert client.trials(sid)["count"] == 2 and client.trial(sid, 0)["state"] == "queued"

    with pytest.raises(ApiError) as no_result:
        client.best(sid)
    assert no_result.value.status == 409 and no_result.value.types == ["no_result_yet"]
    assert str(no_result.value).startswith("study_id: study ") and "no completed trial yet" in str(no_result.value)

    service.finish(sid, [0.8])
    best = client.best(sid)
    assert best == {"lambdas": {"helpful": 0.0, "harmful": 0.0, "neutral": 0.25}, "value": 0.8, "trial": 0,
                    "metric": "val_accuracy", "direction": "maximize"}
    assert client.trials(sid, state="complete")["count"] == 1
    assert client.trials(sid, state=["complete", "queued"])["count"] == 2
    assert client.trial(sid, 0)["series"]["val_accuracy"] == pytest.approx([0.78, 0.79, 0.8])
    assert [w["id"] for w in client.workers()["data"]] in ([], ["w-test"])

    assert client.pause(sid)["status"] == "paused"
    assert client.resume(sid)["status"] == "running"
    with pytest.raises(ApiError) as active:
        client.delete(sid)
    assert active.value.status == 409 and "cancel it first" in str(active.value)
    assert client.cancel(sid)["status"] == "cancelled"
    client.delete(sid)
    with pytest.raises(ApiError) as gone:
        client.study(sid)
    assert gone.value.status == 404 and str(gone.value) == f"study_id: no study with id {sid}; list yours with GET " \
                                                          "/api/v1/studies"


def test_refusals_read_as_one_line_per_problem(client: AuxtuneClient, tmp_path: Path) -> None:
    bad = spec("bad", search={"algorithm": "random", "n_trials": 0},
               aux_tasks=[{"name": "helpful", "loss": "bce", "lambda": {"low": 3, "high": 1}}])
    with pytest.raises(ApiError) as refused:
        client.submit(bad)
    assert refused.value.status == 422
    lines = str(refused.value).splitlines()
    assert len(lines) == 2 and lines == refused.value.messages
    assert any(line.startswith("search.n_trials: ") for line in lines)
    assert any(line.startswith("aux_tasks.0.lambda: ") and "low (3.0) must be ≤ high (1.0)" in line for line in lines)

    client.submit(spec("twice"))
    with pytest.raises(ApiError, match=r"^name: a study named 'twice' already exists") as clash:
        client.submit(spec("twice"))
    assert clash.value.status == 409

    words = tmp_path / "words.csv"
    words.write_bytes(b"weight,breed\nheavy,husky\nlight,beagle\n")
    with pytest.raises(ApiError, match=r"^file: column\(s\) \['weight'\] of 'words.csv' are not numeric") as parsed:
        client.upload_dataset(words, label="breed")
    assert parsed.value.status == 422
    with pytest.raises(ApiError, match="cannot read the file to upload") as missing:
        client.upload_dataset(tmp_path / "absent.csv")
    assert missing.value.status is None
    dataset = client.upload_dataset(_write(tmp_path / "dogs.csv", csv_bytes()), label="breed")
    assert dataset["reference"] == f"dataset:{dataset['id']}" and dataset["rows"] == 30
    assert client.dataset(dataset["id"]) == dataset
    client.delete_dataset(dataset["id"])
    with pytest.raises(ApiError, match=r"^dataset_id: no dataset with id") as deleted:
        client.dataset(dataset["id"])
    assert deleted.value.status == 404
    with pytest.raises(ApiError) as odd:
        client.delete_dataset("../studies")
    assert odd.value.status in (404, 422)


def test_an_unreachable_server_and_a_bad_url_say_so() -> None:
    port = free_port()
    with AuxtuneClient(f"http://127.0.0.1:{port}", timeout=2) as c, pytest.raises(ApiError) as down:
        c.health()
    assert down.value.status is None
    assert str(down.value).startswith(f"cannot reach http://127.0.0.1:{port}: ")
    with pytest.raises(ApiError, match=r"^url: 'localhost:8000' is not an http\(s\) URL"):
        AuxtuneClient("localhost:8000")


def test_error_lines_from_any_body() -> None:
    request = httpx.Request("GET", "http://proxy/api/v1/studies")
    proxy = ApiError.from_response(httpx.Response(502, text="<html>\n  bad gateway\n</html>", request=request))
    assert proxy.status == 502 and str(proxy) == "HTTP 502 Bad Gateway from http://proxy/api/v1/studies: <html>"
    plain = ApiError.from_response(httpx.Response(400, json={"detail": "nope"}, request=request))
    assert str(plain) == "nope" and plain.items == []
    assert error_line({"loc": ["query", "limit"], "msg": "too big"}) == "limit: too big"
    assert error_line({"loc": ["body"], "msg": "malformed JSON"}) == "malformed JSON"
    assert error_line({"loc": ["header", "Authorization"], "msg": "required"}) == "Authorization: required"


def test_token_comes_from_the_argument_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUXTUNE_TOKEN", "axt_from-env")
    with AuxtuneClient("http://127.0.0.1:9/api/v1/") as c:
        assert c.url == "http://127.0.0.1:9" and c._http.headers["Authorization"] == "Bearer axt_from-env"
    with AuxtuneClient("http://127.0.0.1:9", token="axt_given") as c:
        assert c._http.headers["Authorization"] == "Bearer axt_given"
    monkeypatch.delenv("AUXTUNE_TOKEN")
    with AuxtuneClient("http://127.0.0.1:9") as c:
        assert "Authorization" not in c._http.headers


def test_the_client_imports_neither_torch_nor_the_server() -> None:
    code = ("import sys, api.client, api.config; assert api.client.API_PREFIX == api.config.API_PREFIX; "
            "heavy = [m for m in ('torch', 'fastapi', 'storage', 'tuner', 'api.main') if m in sys.modules]; "
            "assert not heavy, heavy")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# -- the CLI verbs ---------------------------------------------------------------------------------------------
def test_submit_status_and_best_over_http(service: Service, tmp_path: Path) -> None:
    path = write_spec(tmp_path, spec("cli-synthetic"))
    submitted = auxtune("submit", str(path), "--url", service.url, "--json")
    assert submitted.returncode == 0, submitted.stderr
    created = json.loads(submitted.stdout)
    sid = created["id"]
    assert created["status"] == "queued" and created["name"] == "cli-synthetic"

    status = auxtune("status", str(sid), "--url", service.url, "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["study"] == "cli-synthetic" and doc["status"] == "queued" and doc["best"] is None
    assert doc["counts"]["queued"] == 2 and doc["finished"] == 0 and doc["n_trials"] == created["n_trials"]

    early = auxtune("best", "cli-synthetic", "--url", service.url, "--json")
    assert early.returncode == 1 and early.stdout == ""
    assert "no completed trial yet" in early.stderr and "Traceback" not in early.stderr
    assert len(early.stderr.strip().splitlines()) == 1

    service.finish(sid, [0.7, 0.9])
    best = auxtune("best", "cli-synthetic", "--url", service.url, "--json")
    assert best.returncode == 0, best.stderr
    assert json.loads(best.stdout) == {"study": "cli-synthetic", "lambdas": {"helpful": 1.0, "harmful": 1.0,
                                       "neutral": 0.25}, "value": 0.9, "trial": 1, "metric": "val_accuracy",
                                       "direction": "maximize"}
    by_id = auxtune("best", str(sid), "--url", service.url)
    assert by_id.returncode == 0 and "best val_accuracy = 0.9000 (maximize) at trial 1" in by_id.stdout

    shown = auxtune("status", "cli-synthetic", "--url", service.url)
    assert shown.returncode == 0, shown.stderr
    assert f"(id {sid}): running, 2/6 trials finished" in shown.stdout and "complete 2" in shown.stdout
    assert "best val_accuracy so far = 0.9000 (maximize) at trial 1" in shown.stdout


def test_submit_uploads_the_local_files_and_a_worker_without_the_apis_disk_runs_them(service: Service,
                                                                                     tmp_path: Path) -> None:
    """The study is stored with its references; the API's data dir is then deleted, and a real worker started in
    another folder with its own cache fetches the uploads from the database (by sha256) and finishes the study."""
    folder = tmp_path / "pets"
    folder.mkdir()
    _write(folder / "dogs.csv", csv_bytes())
    _write(folder / "traits.csv", attributes_bytes())
    path = write_spec(folder, {"name": "cli-table", "workload": {"name": "table", "params": {
        "data": "dogs.csv", "label": "breed", "attributes": "traits.csv"}},
        "aux_tasks": [{"name": "large", "loss": "bce"}], "search": {"algorithm": "random", "n_trials": 3},
        "training": {"epochs": 2, "batch_size": 16}, "sanity": {"enabled": False}})
    done = auxtune("submit", str(path), "--url", service.url)  # relative paths: resolved against the spec's folder
    assert done.returncode == 0, done.stderr
    assert "study cli-table submitted: id " in done.stdout and "status queued" in done.stdout
    assert done.stderr.count("uploaded ") == 2
    with AuxtuneClient(service.url) as c:
        sid = c.find_study("cli-table")["id"]
        params = c.study(sid)["spec"]["workload"]["params"]
    assert params["data"].startswith("dataset:") and params["attributes"].startswith("dataset:")

    again = auxtune("submit", str(path), "--url", service.url)
    assert again.returncode == 2 and "name: a study named 'cli-table' already exists" in again.stderr
    assert "uploaded" not in again.stderr  # refused before any file is sent

    # an image folder: zipped by submit itself, its attribute table (beside it) uploaded as a folder of its own
    root, attributes = write_image_folder(tmp_path / "imgs" / "images", per_class=6)
    images = images_spec(Path("images"), Path(attributes.name), image_size=16)
    images_path = write_spec(tmp_path / "imgs", {**images, "name": "cli-images", "sanity": {"enabled": False}})
    done = auxtune("submit", str(images_path), "--url", service.url)
    assert done.returncode == 0, done.stderr
    assert f"zipped {root} (24 files) and uploaded it as dataset:" in " ".join(done.stderr.split()), done.stderr
    with AuxtuneClient(service.url) as c:
        images_id = c.find_study("cli-images")["id"]
        params = c.study(images_id)["spec"]["workload"]["params"]
    assert params["root"].startswith("dataset:") and params["attributes"].endswith("/images-attributes.csv")

    shutil.rmtree(service.data_dir)  # the API's copies are gone: the store is the truth
    elsewhere = tmp_path / "worker-host"
    elsewhere.mkdir()
    worked = subprocess.run([sys.executable, "-m", "tuner.cli", "worker", "--db", service.db, "--study", "cli-table",
                             "--study", "cli-images", "--no-forever", "--cache-dir", str(elsewhere / "cache")],
                            cwd=elsewhere, capture_output=True, text=True, timeout=300, env=_env(PYTHONPATH=str(ROOT)))
    assert worked.returncode == 0, worked.stderr[-3000:]
    with AuxtuneClient(service.url) as c:
        for study_id, n in ((sid, 3), (images_id, 2)):
            study = c.study(study_id)
            assert study["status"] == "done" and study["counts"].get("complete") == n, (study, worked.stderr[-3000:])
    cached = sorted(p.name for p in (elsewhere / "cache").iterdir())
    assert [n for n in cached if n.endswith(".csv")] == sorted(f"{hashlib.sha256(b).hexdigest()}.csv"
                                                               for b in (csv_bytes(), attributes_bytes()))
    assert len([n for n in cached if n.endswith(".d")]) == 2  # the image folder and the attributes' folder
    assert not service.data_dir.exists()


def test_the_verbs_refuse_bad_input_with_one_line_each(service: Service, tmp_path: Path) -> None:
    with AuxtuneClient(service.url) as c:
        before = c.studies()["count"]
    broken = write_spec(tmp_path, spec("broken", training={"epochs": 0}))
    r = auxtune("submit", str(broken), "--url", service.url)
    assert r.returncode == 2 and "training.epochs" in r.stderr and "Traceback" not in r.stderr
    with AuxtuneClient(service.url) as c:
        assert c.studies()["count"] == before  # checked locally: nothing was sent

    unknown = auxtune("status", "999999", "--url", service.url)
    assert unknown.returncode == 2 and unknown.stderr.strip() == \
        "error: study_id: no study with id 999999; list yours with GET /api/v1/studies"
    nameless = auxtune("best", "no-such-study", "--url", service.url)
    assert nameless.returncode == 2 and "no study named 'no-such-study'" in nameless.stderr
    down = auxtune("status", "1", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 2 and "cannot reach http://127.0.0.1:" in down.stderr
    both = auxtune("best", "1", "--url", service.url, "--db", f"sqlite:///{tmp_path / 'other.db'}")
    assert both.returncode == 2 and "not both" in both.stderr
    missing = auxtune("submit", str(broken))
    assert missing.returncode == 2 and "--url" in missing.stderr


def test_status_without_url_reads_the_local_store(service: Service, client: AuxtuneClient) -> None:
    sid = client.submit(spec("local-status"))["id"]
    service.finish(sid, [0.6])
    r = auxtune("status", "local-status", "--db", service.db, "--json")
    assert r.returncode == 0, r.stderr
    over_http = auxtune("status", "local-status", "--url", service.url, "--json")
    assert json.loads(r.stdout) == json.loads(over_http.stdout)
    doc = json.loads(r.stdout)
    assert doc["id"] == sid and doc["status"] == "running" and doc["finished"] == 1
    assert doc["best"] == {"trial": 0, "value": 0.6, "lambdas": {"helpful": 0.0, "harmful": 0.0}}


def test_best_of_a_multi_objective_study_prints_the_front(service: Service, client: AuxtuneClient) -> None:
    objective = [{"metric": "val_accuracy"}, {"metric": "val_loss:harmful"}]
    sid = client.submit(spec("cli-front", objective=objective, search={"algorithm": "nsga2", "n_trials": 6}))["id"]
    store = Store(service.db)
    try:  # (accuracy ↑, harmful loss ↓): 0 and 1 trade off, 2 is dominated by 1
        numbers = finish_vectors(store, sid, [[0.9, 0.5], [0.8, 0.2], [0.7, 0.3]])
    finally:
        store.close()
    remote = auxtune("best", "cli-front", "--url", service.url, "--json")
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout) == client.best(sid)  # the /best document, unchanged
    local = auxtune("best", "cli-front", "--db", service.db, "--json")
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout) == json.loads(remote.stdout)
    assert [t["trial"] for t in json.loads(local.stdout)["front"]] == numbers[:2]

    for where in (("--url", service.url), ("--db", service.db)):
        shown = auxtune("best", str(sid), *where)
        assert shown.returncode == 0, shown.stderr
        out = shown.stdout
        assert "2 of 3 complete trials on the Pareto front of val_accuracy (maximize), val_loss:harmful (minimize)" \
            in out, out
        assert "val_accuracy ↑" in out and "val_loss:harmful ↓" in out and "λ neutral" in out
        rows = {int(line.split()[0]): line.split() for line in out.splitlines() if line.strip()[:1].isdigit()}
        assert set(rows) == set(numbers[:2]), out  # the dominated trial is not listed
        assert rows[numbers[1]][1:3] == ["0.8", "0.2"] and "val_loss:harmful" in rows[numbers[1]]
        assert "how to pick: 2 of 3 complete trials are Pareto-optimal" in " ".join(out.split())


def test_status_of_a_multi_objective_study_counts_its_front(service: Service, client: AuxtuneClient) -> None:
    objective = [{"metric": "val_accuracy"}, {"metric": "val_loss:harmful"}]
    sid = client.submit(spec("status-front", objective=objective, search={"algorithm": "nsga2", "n_trials": 6}))["id"]
    over = "val_accuracy (maximize), val_loss:harmful (minimize)"
    so_far = {"metrics": ["val_accuracy", "val_loss:harmful"], "directions": ["maximize", "minimize"]}
    early = auxtune("status", "status-front", "--db", service.db, "--json")
    assert early.returncode == 0, early.stderr
    assert json.loads(early.stdout)["pareto"] == {**so_far, "count": 0, "complete": 0}
    assert f"Pareto front of {over}: no completed trial yet" in auxtune("status", str(sid), "--db", service.db).stdout

    with Store(service.db) as store:  # (accuracy ↑, harmful loss ↓): 0 and 1 trade off, 2 is dominated by 1
        finish_vectors(store, sid, [[0.9, 0.5], [0.8, 0.2], [0.7, 0.3]])
        front = len(store.pareto_front(sid))
    assert front == 2
    local = auxtune("status", "status-front", "--db", service.db, "--json")
    remote = auxtune("status", "status-front", "--url", service.url, "--json")
    assert local.returncode == 0 and remote.returncode == 0, local.stderr + remote.stderr
    doc = json.loads(local.stdout)
    assert json.loads(remote.stdout) == doc  # the store and GET /studies/{id} say the same
    assert doc["pareto"] == {**so_far, "count": front, "complete": 3}
    assert doc["best"]["value"] == 0.9 and doc["best"]["primary_objective"] == "val_accuracy"  # labelled as such
    for where, best in ((("--db", service.db), "auxtune best status-front"),
                        (("--url", service.url), f"auxtune best status-front --url {service.url}")):
        out = " ".join(auxtune("status", "status-front", *where).stdout.split())
        assert f"Pareto front so far: {front} of 3 complete trials, over {over}" in out, out
        assert f"`{best}`" in out and "best on the primary objective alone: val_accuracy = 0.9000" in out
        assert "best val_accuracy so far" not in out

    single = client.submit(spec("status-single"))["id"]  # one objective: no front in its status
    service.finish(single, [0.6])
    plain = auxtune("status", "status-single", "--db", service.db, "--json")
    assert "pareto" not in json.loads(plain.stdout) and "primary_objective" not in json.loads(plain.stdout)["best"]
    assert "Pareto" not in auxtune("status", "status-single", "--url", service.url).stdout


# -- with tokens -----------------------------------------------------------------------------------------------
def test_tokens_from_the_option_or_the_environment(tmp_path: Path) -> None:
    env = _env(AUXTUNE_ADMIN_TOKEN=ADMIN_TOKEN, AUXTUNE_DATA_DIR=str(tmp_path / "data"))
    db = f"sqlite:///{tmp_path / 'auth.db'}"
    with server(["-m", "api", "--port", "{port}", "--db", db], env, tmp_path / "auth.log") as url:
        with AuxtuneClient(url, token="") as anonymous, pytest.raises(ApiError) as refused:
            anonymous.studies()
        assert refused.value.status == 401
        assert str(refused.value) == ("Authorization: a bearer token is required: send the header "
                                      "'Authorization: Bearer <token>'")
        with AuxtuneClient(url, token=ADMIN_TOKEN) as admin:
            sid = admin.submit(spec("guarded"))["id"]

        path = write_spec(tmp_path / "spec", spec("guarded-2"))
        no_token = auxtune("submit", str(path), "--url", url)
        assert no_token.returncode == 2 and "Authorization: a bearer token is required" in no_token.stderr
        with_option = auxtune("status", str(sid), "--url", url, "--token", ADMIN_TOKEN, "--json")
        assert with_option.returncode == 0 and json.loads(with_option.stdout)["study"] == "guarded"
        from_env = auxtune("submit", str(path), "--url", url, "--json", env=_env(AUXTUNE_TOKEN=ADMIN_TOKEN))
        assert from_env.returncode == 0, from_env.stderr
        assert json.loads(from_env.stdout)["owner"] == "admin"
