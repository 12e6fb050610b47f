"""The service's settings, in one place: environment variables ``AUXTUNE_*`` (or a ``Settings(...)`` in code)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

API_PREFIX = "/api/v1"
MiB = 1024 * 1024


class Settings(BaseSettings):
    """Settings of one API process. Each field reads ``AUXTUNE_<FIELD>`` (``AUXTUNE_DB``, ``AUXTUNE_AUTH``, …)."""

    model_config = SettingsConfigDict(env_prefix="AUXTUNE_", extra="ignore")

    db: str | None = Field(None, description="store URL; default: sqlite:///./auxtune.db (storage.DEFAULT_URL)")
    auth: bool = Field(True, description="require bearer tokens; false (--no-auth) only for localhost demos")
    admin_token: SecretStr | None = Field(
        None, description="the admin token; unset: one is generated on first start and printed once")
    data_dir: Path = Field(Path("./auxtune-data"), description="the API's cache of uploaded data sets (the store holds "
                                                               "them; auxtune serve's embedded workers share it)")
    max_upload_bytes: int = Field(50 * MiB, gt=0, description="largest dataset upload (whole request body)")
    max_body_bytes: int = Field(1 * MiB, gt=0, description="largest request body of every other endpoint")
    worker_alive_s: float = Field(60.0, gt=0, description="a worker counts as alive this long after a heartbeat")
    allow_server_paths: bool = Field(
        False, description="let specs of admin tokens name files on the API host (other tokens: 403; the workers "
                           "must see the same path); off: data files must be uploaded datasets")
