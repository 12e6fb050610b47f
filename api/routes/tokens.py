"""``/api/v1/tokens``: admins hand out bearer tokens."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AdminPrincipal, StoreDep
from api.errors import error_responses
from api.schemas import TokenCreate, TokenPublic

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.post("", status_code=201, response_model=TokenPublic, responses=error_responses(401, 403, 422))
def create_token(body: TokenCreate, store: StoreDep, _: AdminPrincipal) -> TokenPublic:
    """A new token for ``owner`` (admin only). The token is in this response only; the store keeps its hash."""
    record, token = store.create_token(body.owner, is_admin=body.is_admin)
    return TokenPublic(id=record.id, owner=record.owner, is_admin=record.is_admin, created_at=record.created_at,
                       token=token)
