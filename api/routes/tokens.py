"""``/api/v1/tokens``: admins hand out, list and revoke bearer tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from api.deps import MAX_ID, AdminPrincipal, StoreDep
from api.errors import error_responses
from api.schemas import TokenCreate, TokenInfo, TokenPublic, TokensPublic

router = APIRouter(prefix="/tokens", tags=["tokens"])

TokenId = Annotated[int, Path(ge=1, le=MAX_ID, description="the token's id, as listed by GET /api/v1/tokens")]


@router.post("", status_code=201, response_model=TokenPublic, responses=error_responses(401, 403, 422))
def create_token(body: TokenCreate, store: StoreDep, _: AdminPrincipal) -> TokenPublic:
    """A new token for ``owner`` (admin only). The token is in this response only; the store keeps its hash."""
    record, token = store.create_token(body.owner, is_admin=body.is_admin)
    return TokenPublic(id=record.id, owner=record.owner, is_admin=record.is_admin, created_at=record.created_at,
                       token=token)


@router.get("", response_model=TokensPublic, responses=error_responses(401, 403))
def read_tokens(store: StoreDep, _: AdminPrincipal) -> TokensPublic:
    """Every token's id, owner, admin flag and creation time (admin only); never the tokens themselves."""
    records = store.list_tokens()
    return TokensPublic(data=[TokenInfo(id=r.id, owner=r.owner, is_admin=r.is_admin, created_at=r.created_at)
                              for r in records], count=len(records))


@router.delete("/{token_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404, 409, 422))
def delete_token(token_id: TokenId, store: StoreDep, _: AdminPrincipal) -> Response:
    """Revoke a token (admin only): it stops working at once. The last admin token cannot be revoked (409);
    the owner's studies stay and an admin can still reach them."""
    store.revoke_token(token_id)
    return Response(status_code=204)
