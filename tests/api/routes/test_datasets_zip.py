"""``POST /api/v1/datasets`` with a .zip of a data folder: hostile zips refused with a 422 that names the problem
and store nothing (no file, no row); a good one is stored, and files inside it are referenced from a spec."""

from __future__ import annotations

import io
import sqlite3
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.config import Settings
from tests.api.bomb_factories import forged_size_zip, many_entries_zip, png_bytes, wide_zip_bomb, zip_bomb
from tests.api.factories import ADMIN, DATASETS, STUDIES, attributes_bytes, csv_bytes, table_spec
from tuner.workloads import archives


def zip_of(entries: dict[str, bytes | zipfile.ZipInfo]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, b"/etc/passwd")
            else:
                zf.writestr(name, data)
    return out.getvalue()


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def send(client: TestClient, content: bytes, filename: str = "pets.zip"):  # type: ignore[no-untyped-def]
    return client.post(DATASETS, files={"file": (filename, content)}, headers=ADMIN)


def stored_rows(settings: Settings) -> int:
    with sqlite3.connect(str(settings.db).removeprefix("sqlite:///")) as db:
        return int(db.execute("SELECT count(*) FROM auxtune_datasets").fetchone()[0]
                   + db.execute("SELECT count(*) FROM auxtune_blob_chunks").fetchone()[0])


PNG = png_bytes()
HOSTILE: dict[str, tuple[Callable[[Path], bytes], str]] = {
    "path traversal": (lambda _: zip_of({"pets/cat/1.png": PNG, "../../evil.png": PNG}), "'..' part"),
    "absolute path": (lambda _: zip_of({"/etc/cron.d/x.png": PNG}), "absolute path"),
    "symlink": (lambda _: zip_of({"pets/cat/1.png": PNG, "pets/cat/2.png": symlink("pets/cat/2.png")}),
                "is a symbolic link"),
    "zip bomb": (lambda tmp: zip_bomb(tmp / "b.zip", 20 << 20).read_bytes(), "limit is 100:1"),
    "many small bombs": (lambda tmp: wide_zip_bomb(tmp / "w.zip", 15).read_bytes(), "limit is 20:1 for a whole zip"),
    "forged sizes": (lambda tmp: forged_size_zip(tmp / "f.zip").read_bytes(), "cannot be unpacked"),
    "too many entries": (lambda tmp: many_entries_zip(tmp / "m.zip", 21).read_bytes(), "limit is 20"),
    "non-image file": (lambda _: zip_of({"pets/cat/1.png": PNG, "pets/run.sh": b"rm -rf /"}),
                       "'pets/run.sh' is neither an image"),
    "not really a png": (lambda _: zip_of({"pets/cat/1.png": b"GIF89a not a png"}), "cannot be read as an image"),
    "duplicate names": (lambda _: zip_of({"pets/cat/1.png": PNG, "pets/cat/1.PNG": PNG}), "twice"),
    "not a zip": (lambda _: b"PK but not really", "is not a zip file"),
}


def test_hostile_zips_are_refused_with_the_problem_named_and_nothing_stored(
        client: TestClient, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archives, "MAX_ENTRIES", 20)
    for case, (build, words) in HOSTILE.items():
        r = send(client, build(tmp_path))
        assert r.status_code == 422, (case, r.text)
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "file"] and words in error["msg"], (case, error)
        assert str(settings.data_dir) not in error["msg"] and ".incoming" not in error["msg"], case
        assert list(settings.data_dir.iterdir()) == [], case
        assert stored_rows(settings) == 0, case
    assert not (tmp_path.parent / "evil.png").exists()


def test_a_zip_is_stored_as_a_folder_and_files_inside_it_are_referenced(client: TestClient,
                                                                        settings: Settings) -> None:
    content = zip_of({"pets/images/cat/1.png": PNG, "pets/images/dog/1.jpg": _jpeg(), "pets/dogs.csv": csv_bytes(),
                      "pets/traits.csv": attributes_bytes(), "pets/classes.csv": b"class,ear\ncat,0.9\ndog,0.1\n",
                      "__MACOSX/pets/._dogs.csv": b"junk"})
    r = send(client, content)
    assert r.status_code == 201, r.text
    ds = r.json()
    assert ds["format"] == "folder" and ds["reference"] == f"dataset:{ds['id']}" and ds["size_bytes"] == len(content)
    assert ds["images"] == 2 and ds["tables"] == ["classes.csv", "dogs.csv", "traits.csv"] and ds["rows"] is None
    assert ds["contents"] == ["classes.csv", "dogs.csv", "images/", "traits.csv"]  # its one top-level folder
    cached = settings.data_dir / f"{ds['sha256']}.d"
    assert (cached / "images" / "cat" / "1.png").read_bytes() == PNG
    assert client.get(f"{DATASETS}/{ds['id']}", headers=ADMIN).json() == ds

    ref = ds["reference"]
    created = client.post(STUDIES, json=table_spec("inside", f"{ref}/dogs.csv", f"{ref}/traits.csv"), headers=ADMIN)
    assert created.status_code == 201, created.text
    params = client.get(f"{STUDIES}/{created.json()['id']}", headers=ADMIN).json()["spec"]["workload"]["params"]
    assert (params["data"], params["attributes"]) == (f"{ref}/dogs.csv", f"{ref}/traits.csv")

    for inner, words in (("absent.csv", "has no 'absent.csv'; its top level holds ['classes.csv', 'dogs.csv'"),
                         ("../dogs.csv", "plain names joined by '/'")):
        r = client.post(STUDIES, json=table_spec("bad", f"{ref}/{inner}"), headers=ADMIN)
        assert r.status_code == 422, r.text
        [error] = r.json()["detail"]
        assert error["loc"] == ["body", "workload", "params", "data"] and words in error["msg"], error
    r = client.post(STUDIES, json=table_spec("images-as-table", f"{ref}/images"), headers=ADMIN)
    assert r.status_code == 422 and str(settings.data_dir) not in r.text, r.text
    assert ref in r.text  # the checker's message names the folder by its reference

    images = {"name": "pets", "workload": {"name": "images", "params": {
        "root": f"{ref}/images", "attributes": f"{ref}/classes.csv", "image_size": 8}},
        "aux_tasks": [{"name": "ear", "loss": "bce"}], "search": {"algorithm": "random", "n_trials": 2}}
    r = client.post(STUDIES, json=images, headers=ADMIN)
    assert r.status_code == 201, r.text
    one_class = {**images, "name": "pets-2", "workload": {"name": "images", "params": {
        "root": ref, "attributes": f"{ref}/classes.csv"}}}
    r = client.post(STUDIES, json=one_class, headers=ADMIN)  # its top level has one folder: one class
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "workload", "params", "root"] and str(settings.data_dir) not in error["msg"]
    assert ref in error["msg"], error


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 90, 200)).save(out, "JPEG")
    return out.getvalue()
