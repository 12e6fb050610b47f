"""API fixtures: a real SQLite file per test behind the app factory, driven through FastAPI's TestClient."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():  # Starlette 1.x asks for httpx2 in its TestClient; httpx still works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from api.config import Settings
from api.main import create_app
from storage import Store
from tests.api.factories import ADMIN_TOKEN, UPLOAD_LIMIT


def make_settings(root: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "db": f"sqlite:///{root / 'api.db'}", "auth": True, "admin_token": ADMIN_TOKEN, "data_dir": root / "data",
        "max_upload_bytes": UPLOAD_LIMIT, "max_body_bytes": 64 * 1024, "allow_server_paths": False,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def store(client: TestClient) -> Store:
    """The app's own store (one per process), to set up what only workers would write."""
    return client.app.state.store  # type: ignore[attr-defined,no-any-return]
