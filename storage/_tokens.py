"""API tokens: who may call the REST service, and as which owner.

Only a token's SHA-256 is stored, never the token: a leaked database does not leak working tokens. Tokens are
32 random bytes, so a plain hash (no salt, no slow KDF) is enough, and a lookup is one indexed equality.

The admin token an operator sets in ``AUXTUNE_ADMIN_TOKEN`` is stored marked ``from_env``; when the API starts
with another value, the previously marked token is revoked, so rotating the variable retires the old token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, delete, false, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from storage._core import StoreCore, as_utc, utcnow
from storage.errors import TokenConflict, TokenNotFound
from storage.locks import CATALOG_KEY
from storage.models import Base

logger = logging.getLogger(__name__)

#: Every token starts with this, so a token in a log or a paste is recognisable (and greppable).
TOKEN_PREFIX = "axt_"
#: Owner of the first admin token.
ADMIN_OWNER = "admin"


def hash_token(token: str) -> str:
    """The stored form of a token: the hex SHA-256 of its text."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token (``axt_`` + 43 URL-safe characters, 256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenModel(Base):
    __tablename__ = "auxtune_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    #: The admin token of ``AUXTUNE_ADMIN_TOKEN`` (at most one): revoked when the variable changes.
    from_env: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


@dataclass(frozen=True)
class TokenRecord:
    """A token as the store knows it (without the token itself)."""

    id: int
    owner: str
    is_admin: bool
    created_at: datetime


def _record(row: TokenModel) -> TokenRecord:
    return TokenRecord(id=row.id, owner=row.owner, is_admin=row.is_admin,
                       created_at=as_utc(row.created_at) or utcnow())


class TokenOps(StoreCore):
    def create_token(self, owner: str, is_admin: bool = False, token: str | None = None,
                     from_env: bool = False) -> tuple[TokenRecord, str]:
        """Store a new token for ``owner`` (``token``, else a fresh random one); returns it with its record.

        The token text is returned once here and never stored: hand it to its owner now. ``from_env`` marks the
        operator's ``AUXTUNE_ADMIN_TOKEN`` (see ``ensure_admin_token``).
        """
        if not owner:
            raise ValueError("owner must not be empty")
        token = token or new_token()
        with self.session("creating a token") as session:
            row = TokenModel(token_hash=hash_token(token), owner=owner, is_admin=is_admin, created_at=self._now(),
                             from_env=from_env)
            session.add(row)
            session.flush()
            session.refresh(row)
            return _record(row), token

    def list_tokens(self) -> list[TokenRecord]:
        """Every token's record (never the token itself), oldest first."""
        with self.session("listing tokens") as session:
            return [_record(row) for row in session.scalars(select(TokenModel).order_by(TokenModel.id))]

    def revoke_token(self, token_id: int) -> TokenRecord:
        """Delete a token, so it no longer authenticates; returns its record.

        Raises ``TokenNotFound`` for an unknown id and ``TokenConflict`` for the last admin token (the store
        would have no admin left; create another admin token first).
        """
        with self._critical_section(CATALOG_KEY), self.session("revoking a token") as session:
            row = session.get(TokenModel, token_id)
            if row is None:
                raise TokenNotFound(f"no token with id {token_id}")
            if row.is_admin:
                admins = session.scalar(select(func.count()).select_from(TokenModel).where(TokenModel.is_admin))
                if (admins or 0) <= 1:
                    raise TokenConflict(f"token {token_id} is the last admin token; create another admin token "
                                        "(POST /api/v1/tokens with is_admin: true) before revoking it")
            record = _record(row)
            session.delete(row)
            return record

    def authenticate(self, token: str) -> TokenRecord | None:
        """The record of ``token``, or ``None`` if no such token was ever created."""
        with self.session("checking a token") as session:
            row = session.scalars(select(TokenModel).where(TokenModel.token_hash == hash_token(token))).one_or_none()
            return None if row is None else _record(row)

    def ensure_admin_token(self, token: str | None = None) -> str | None:
        """Make sure an admin can log in; returns a newly generated token (to print once), else ``None``.

        With ``token`` (set by the operator in ``AUXTUNE_ADMIN_TOKEN``), that token is stored as an admin token
        if it is not yet known, and marked as the operator's; an earlier operator's token (another value of the
        variable) is revoked: rotating the variable retires the old token. Without it, a random admin token is
        created only if the store has no admin token at all. Runs in a critical section, so API processes
        starting together create one token, not one each.
        """
        with self._critical_section(CATALOG_KEY):
            if token is not None:
                self._store_operator_token(token)
                return None
            with self.session("looking for an admin token") as session:
                admins = session.scalar(select(func.count()).select_from(TokenModel).where(TokenModel.is_admin))
            if admins:
                return None
            _, created = self.create_token(ADMIN_OWNER, is_admin=True)
            return created

    def _store_operator_token(self, token: str) -> None:
        """``token`` becomes the one ``from_env`` admin token; any other ``from_env`` token is revoked."""
        digest = hash_token(token)
        with self.session("storing the operator's admin token") as session:
            known = session.scalars(select(TokenModel).where(TokenModel.token_hash == digest)).one_or_none()
            if known is None:
                session.add(TokenModel(token_hash=digest, owner=ADMIN_OWNER, is_admin=True, created_at=self._now(),
                                       from_env=True))
                logger.info("stored the admin token given by the operator")
            elif not known.from_env:  # stored before tokens were marked, or created with this text by hand
                session.execute(update(TokenModel).where(TokenModel.id == known.id).values(from_env=True))
            revoked = session.execute(delete(TokenModel).where(TokenModel.from_env, TokenModel.token_hash != digest))
            if revoked.rowcount:  # type: ignore[attr-defined]
                logger.warning("AUXTUNE_ADMIN_TOKEN changed: revoked the admin token it gave before")
