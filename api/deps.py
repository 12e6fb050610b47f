"""Typed dependencies: the settings, the store and the datasets of this app, the caller, a study they own."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Principal, authenticate, check_owner
from api.config import Settings
from api.datasets import Datasets
from api.errors import ApiError
from storage import Store, StudyNotFound, StudyRecord

# Declares the scheme in the OpenAPI document (the "Authorize" button in /docs); the header is checked in
# ``current_principal`` so that every failure gets the shared error shape.
_bearer = HTTPBearer(auto_error=False, description="a token from the first start's log or POST /api/v1/tokens")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_store(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


def get_datasets(request: Request) -> Datasets:
    return request.app.state.datasets  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
DatasetsDep = Annotated[Datasets, Depends(get_datasets)]


def current_principal(
    request: Request, store: StoreDep, settings: SettingsDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return authenticate(store, settings, request.headers.get("Authorization"))


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def admin_principal(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "only an admin token may do this", ["header", "Authorization"], "forbidden")
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]

#: Ids and numbers are 32-bit in the store; larger values could only overflow a driver, never match.
MAX_ID = 2**31 - 1
StudyId = Annotated[int, Path(ge=1, le=MAX_ID, description="the study's id (from POST /api/v1/studies)")]


def owned_study(study_id: StudyId, store: StoreDep, principal: CurrentPrincipal) -> StudyRecord:
    """The study in the path: 404 if there is none, 403 if it belongs to another owner."""
    try:
        study = store.get_study(study_id)
    except StudyNotFound:
        raise ApiError(404, f"no study with id {study_id}; list yours with GET /api/v1/studies",
                       ["path", "study_id"], "not_found") from None
    return check_owner(principal, study)


OwnedStudy = Annotated[StudyRecord, Depends(owned_study)]
