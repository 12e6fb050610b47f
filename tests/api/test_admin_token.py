"""The operator's admin token (``AUXTUNE_ADMIN_TOKEN``): too short is refused at start (exit 2), and a new value
revokes the token of the old one (rotation) while every other token stays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.auth import MIN_ADMIN_TOKEN_CHARS, AdminTokenRefused
from api.main import create_app
from tests.api.conftest import make_settings
from tests.api.factories import STUDIES
from tests.api.test_server import ROOT, free_port

OLD = "axt_the-first-operator-token-0001"
NEW = "axt_the-rotated-operator-token-02"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("command", [["-m", "api"], ["-m", "tuner.cli", "serve", "--workers", "0"]])
def test_a_short_admin_token_is_refused_at_start_with_exit_2(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env.update(AUXTUNE_ADMIN_TOKEN="x", AUXTUNE_DB=f"sqlite:///{tmp_path / 'a.db'}",
               AUXTUNE_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run([sys.executable, *command, "--port", str(free_port())], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "AUXTUNE_ADMIN_TOKEN is 1 characters long" in done.stderr
    assert f"at least {MIN_ADMIN_TOKEN_CHARS}" in done.stderr and "secrets.token_urlsafe" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_app_refuses_a_short_admin_token_when_it_starts(tmp_path: Path) -> None:
    """``uvicorn api.main:app`` (no ``python -m api``) gets the same refusal from the app's start."""
    with pytest.raises(AdminTokenRefused, match="at least 24"), \
            TestClient(create_app(make_settings(tmp_path, admin_token="a" * (MIN_ADMIN_TOKEN_CHARS - 1)))):
        pass


def test_a_new_admin_token_in_the_environment_revokes_the_old_one(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, admin_token=OLD))) as client:
        assert client.get(STUDIES, headers=_bearer(OLD)).status_code == 200
        made = client.post("/api/v1/tokens", json={"owner": "ops", "is_admin": True}, headers=_bearer(OLD))
        assert made.status_code == 201, made.text
        by_hand = made.json()["token"]
    with TestClient(create_app(make_settings(tmp_path, admin_token=NEW))) as client:
        assert client.get(STUDIES, headers=_bearer(OLD)).status_code == 401  # rotated out
        assert client.get(STUDIES, headers=_bearer(NEW)).status_code == 200
        assert client.get(STUDIES, headers=_bearer(by_hand)).status_code == 200  # tokens made by hand stay
    with TestClient(create_app(make_settings(tmp_path, admin_token=NEW))) as client:  # same value: nothing changes
        assert client.get(STUDIES, headers=_bearer(NEW)).status_code == 200
        tokens = client.get("/api/v1/tokens", headers=_bearer(NEW)).json()
        assert tokens["count"] == 2
