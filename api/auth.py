"""Who is calling: bearer tokens checked against the store, owners, and the first admin token.

Every write endpoint and every read of study data needs a token (``api.deps.CurrentPrincipal``). A token
belongs to an owner; studies and datasets record the owner of the token that created them, and only that
owner (or an admin) may read or change them: 401 without a valid token, 403 for another owner's study.
With ``auth`` off (``--no-auth``, localhost demos) every caller is an admin without an owner.

The operator's ``AUXTUNE_ADMIN_TOKEN`` must be at least ``MIN_ADMIN_TOKEN_CHARS`` characters (it opens
everything); setting it to a new value revokes the token of the old value at the next start (rotation).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from api.config import Settings
from api.errors import ApiError
from storage import Store, StudyRecord

logger = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}

#: Shortest ``AUXTUNE_ADMIN_TOKEN`` accepted: the admin token opens everything, so it must not be guessable.
MIN_ADMIN_TOKEN_CHARS = 24


class AdminTokenRefused(ValueError):
    """The operator's ``AUXTUNE_ADMIN_TOKEN`` cannot guard the service (too short, or with spaces)."""


@dataclass(frozen=True)
class Principal:
    """The caller: an owner name (``None`` when auth is off) and whether it may act on everything."""

    owner: str | None
    is_admin: bool

    def may_access(self, owner: str | None) -> bool:
        """Whether this caller may read or change something owned by ``owner`` (``None``: admins only)."""
        return self.is_admin or (owner is not None and owner == self.owner)


NO_AUTH = Principal(owner=None, is_admin=True)


def authenticate(store: Store, settings: Settings, authorization: str | None) -> Principal:
    """The principal of an ``Authorization`` header value, or a 401 saying what to send."""
    if not settings.auth:
        return NO_AUTH
    if not authorization:
        raise ApiError(401, "a bearer token is required: send the header 'Authorization: Bearer <token>'",
                       ["header", "Authorization"], "missing_token", headers=_CHALLENGE)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "the Authorization header must be 'Bearer <token>'", ["header", "Authorization"],
                       "bad_token", headers=_CHALLENGE)
    record = store.authenticate(token)
    if record is None:
        raise ApiError(401, "unknown token: check it, or ask an admin for one (POST /api/v1/tokens)",
                       ["header", "Authorization"], "bad_token", headers=_CHALLENGE)
    return Principal(owner=record.owner, is_admin=record.is_admin)


def check_owner(principal: Principal, study: StudyRecord) -> StudyRecord:
    """``study`` if the caller may access it, else a 403."""
    if not principal.may_access(study.owner):
        raise ApiError(403, f"study {study.id} belongs to another owner; use a token of its owner or an admin's",
                       ["path", "study_id"], "forbidden")
    return study


def admin_token_problem(settings: Settings) -> str | None:
    """Why the operator's ``AUXTUNE_ADMIN_TOKEN`` cannot be used (with the fix), or None (also when unset)."""
    given = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    if not settings.auth or not given:
        return None
    fix = ("set a long random one (python -c \"import secrets; print('axt_' + secrets.token_urlsafe(32))\"), "
           "or unset it to have one generated and printed at the first start")
    if len(given) < MIN_ADMIN_TOKEN_CHARS:
        return (f"AUXTUNE_ADMIN_TOKEN is {len(given)} characters long; an admin token needs at least "
                f"{MIN_ADMIN_TOKEN_CHARS}: {fix}")
    if any(c.isspace() for c in given):
        return f"AUXTUNE_ADMIN_TOKEN contains whitespace, which no Authorization header can carry: {fix}"
    return None


def bootstrap_admin_token(store: Store, settings: Settings) -> None:
    """On start with auth on: store the operator's admin token (revoking the one an earlier value of
    ``AUXTUNE_ADMIN_TOKEN`` gave), or create one on the very first start and print it once (it is never stored
    in clear, so it cannot be shown again).

    Raises:
        AdminTokenRefused: the operator's token is too short or has whitespace (``admin_token_problem``).
    """
    if not settings.auth:
        logger.warning("authentication is OFF (--no-auth): anyone who can reach this port can do anything; "
                       "use it on localhost only")
        return
    problem = admin_token_problem(settings)
    if problem is not None:
        raise AdminTokenRefused(problem)
    given = settings.admin_token.get_secret_value() if settings.admin_token is not None else None
    given = given or None  # AUXTUNE_ADMIN_TOKEN="" means unset: create one and print it, never a silent one
    created = store.ensure_admin_token(given)
    if created is not None:
        print(f"auxtune: created the first admin token (shown only now, store it): {created}", file=sys.stderr,
              flush=True)
