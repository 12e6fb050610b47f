"""Decompression and width bombs uploaded to a real server over HTTP: each is refused from its footer or header
with a 422 naming the file field, nothing is stored, and the server goes on serving.

The files are just over the limits of ``tuner.workloads.table_files`` (not the bench's 40 M rows), so they stay
small on disk and fast to write; ``bench/upload_bombs.py`` sends the full-size ones and prints the peak RSS.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.bomb_factories import constant_parquet, long_csv, long_row_csv, wide_csv
from tests.api.factories import ADMIN, ADMIN_TOKEN, DATASETS, csv_bytes
from tests.api.test_server import server
from tuner.workloads.table_files import MAX_CELLS, MAX_COLUMNS, MAX_ROWS


@dataclass
class Live:
    http: httpx.Client
    data_dir: Path
    files: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("bombs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env.update(AUXTUNE_DB=f"sqlite:///{root / 'api.db'}", AUXTUNE_DATA_DIR=str(root / "data"),
               AUXTUNE_ADMIN_TOKEN=ADMIN_TOKEN)
    files = root / "files"
    files.mkdir()
    with server(["-m", "api", "--host", "127.0.0.1", "--port", "{port}"], env, root / "server.log") as url, \
            httpx.Client(base_url=url, headers=ADMIN, timeout=60) as http:
        yield Live(http, root / "data", files)


def refused(live: Live, path: Path, *words: str) -> str:
    """Upload ``path``; assert a 422 on the file field, with ``words`` in its message, that left nothing behind."""
    with path.open("rb") as f:
        r = live.http.post(DATASETS, files={"file": (path.name, f)}, data={"label": "breed"})
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "file"] and error["type"] == "too_large", error
    assert all(w in error["msg"] for w in words), error["msg"]
    assert str(live.data_dir) not in error["msg"]
    assert list(live.data_dir.iterdir()) == []
    return str(error["msg"])


def test_a_parquet_of_too_many_rows_is_refused_from_its_footer(live: Live) -> None:
    bomb = constant_parquet(live.files / "bomb.parquet", MAX_ROWS + 1)
    assert bomb.stat().st_size < 100_000  # a million rows in a few kilobytes
    msg = refused(live, bomb, f"{MAX_ROWS + 1} rows", f"limit is {MAX_ROWS}", "'bomb.parquet'")
    assert "sample" in msg


def test_a_wide_csv_is_refused_from_its_header(live: Live) -> None:
    started = time.monotonic()
    refused(live, wide_csv(live.files / "wide.csv", MAX_COLUMNS + 1), f"{MAX_COLUMNS + 2} columns",
            f"limit is {MAX_COLUMNS}")
    wider = wide_csv(live.files / "wider.csv", 300_000, rows=1)  # the 300 000 columns: header too long
    refused(live, wider, "header line longer than")
    assert time.monotonic() - started < 10


def test_csvs_of_too_many_rows_or_fields_are_refused_before_parsing(live: Live) -> None:
    refused(live, long_csv(live.files / "long.csv", MAX_ROWS + 1), f"more than {MAX_ROWS} rows")
    refused(live, long_row_csv(live.files / "row.csv", MAX_CELLS + 1), f"more than {MAX_CELLS} fields")


def test_the_server_still_takes_a_valid_upload_after_the_bombs(live: Live) -> None:
    r = live.http.post(DATASETS, files={"file": ("dogs.csv", csv_bytes())}, data={"label": "breed"})
    assert r.status_code == 201, r.text
    assert sorted(p.name for p in live.data_dir.iterdir()) == [f"{r.json()['sha256']}.csv"]  # the API's cache
