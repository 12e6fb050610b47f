"""One error shape for every refusal: ``{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}``.

``loc`` names where the problem is (``["body", "search", "n_trials"]``, ``["path", "study_id"]``,
``["header", "Authorization"]``), ``msg`` says what is wrong and how to fix it. FastAPI's own validation
errors, the spec checker's ``SpecError``, Starlette's 404/405 and the store's errors all leave in this shape;
nothing a client sends yields a 500 with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import ErrorResponse
from storage import (
    StoreError,
    StoreUnavailable,
    StudyConflict,
    StudyNotFound,
    TokenConflict,
    TokenNotFound,
    TrialNotFound,
)

logger = logging.getLogger(__name__)

Loc = Sequence[str | int]

#: What callers (anonymous ones too) learn of a database that does not answer; the reason goes to the log.
STORE_UNAVAILABLE_MSG = "the database is not answering; try again shortly (the server log has the reason)"
STORE_ERROR_MSG = "the store failed on this request; the server log has the reason"


def error_item(loc: Loc, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": type_}


class ApiError(StarletteHTTPException):
    """A refusal with the shared error shape; raise it from handlers and dependencies."""

    def __init__(self, status_code: int, msg: str, loc: Loc = (), type_: str = "error",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code, detail=msg, headers=headers)
        self.items = [error_item(loc, msg, type_)]

    @classmethod
    def many(cls, status_code: int, items: Iterable[dict[str, Any]]) -> ApiError:
        error = cls(status_code, "")
        error.items = list(items)
        error.detail = "; ".join(str(item["msg"]) for item in error.items)
        return error


def spec_field_loc(field: str, root: str = "body") -> list[str | int]:
    """``"aux_tasks.0.lambda"`` → ``["body", "aux_tasks", 0, "lambda"]``."""
    return [root, *(int(p) if p.isdigit() else p for p in field.split(".") if p)]


def _validation_msg(err: dict[str, Any]) -> str:
    """Pydantic's message in user words, with the fix where there is one (the rules of ``tuner.spec``)."""
    kind, msg, ctx = err.get("type", ""), str(err.get("msg", "")), err.get("ctx") or {}
    if kind == "json_invalid":
        return (f"malformed JSON ({ctx.get('error', 'cannot parse')}); send one JSON object with "
                "Content-Type: application/json")
    if kind == "extra_forbidden":
        return "unknown field; remove it or check its spelling"
    if kind == "literal_error":
        return f"got {err.get('input')!r}; allowed: {ctx.get('expected', '')}"
    if tuple(err.get("loc", ())) == ("body",) and kind in ("missing", "dict_type", "model_type",
                                                           "model_attributes_type"):
        return "the body must be a JSON object; send it with Content-Type: application/json"
    if kind == "missing":
        return "required; add this field"
    return msg.removeprefix("Value error, ")


def _validation_loc(err: dict[str, Any]) -> list[str | int]:
    loc = list(err.get("loc", ()))
    if err.get("type") == "json_invalid":  # FastAPI puts the character offset there; the message says enough
        return ["body"]
    return loc


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = [error_item(_validation_loc(e), _validation_msg(e), e.get("type", "value_error")) for e in exc.errors()]
    return JSONResponse({"detail": items}, status_code=422)


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        items = exc.items
    elif exc.status_code == 400 and exc.detail == _FASTAPI_BODY_ERROR:
        items = [error_item(["body"], _BODY_ERROR_MSG, "invalid_body")]
    else:  # Starlette's and FastAPI's own (unknown route, wrong method)
        items = [error_item([], _plain_http_msg(exc.status_code, str(exc.detail)), "http_error")]
    return JSONResponse({"detail": items}, status_code=exc.status_code, headers=exc.headers)


#: FastAPI's 400 for a JSON body its parser raised on with something else than a syntax error: in practice a
#: number past Python's 4 300 digits, or nesting deeper than the parser's recursion limit.
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_BODY_ERROR_MSG = ("the JSON body cannot be read: a number has more than 4300 digits or the nesting is too deep; "
                   "send one JSON object of a study spec, numbers of at most 19 digits")


def _plain_http_msg(code: int, detail: str) -> str:
    if code == status.HTTP_404_NOT_FOUND:
        return "no such endpoint; see /docs for the API"
    if code == status.HTTP_405_METHOD_NOT_ALLOWED:
        return "method not allowed on this endpoint; see /docs for the API"
    return detail


async def _on_store_error(_: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StudyNotFound | TrialNotFound | TokenNotFound):
        code, type_ = status.HTTP_404_NOT_FOUND, "not_found"
    elif isinstance(exc, StudyConflict | TokenConflict):
        code, type_ = status.HTTP_409_CONFLICT, "conflict"
    elif isinstance(exc, StoreUnavailable):  # its text names the database URL or a server path: log it only
        logger.error("store unavailable: %s", exc)
        return JSONResponse({"detail": [error_item([], STORE_UNAVAILABLE_MSG, "store_unavailable")]},
                            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": "5"})
    else:
        logger.error("store error: %s", exc)
        return JSONResponse({"detail": [error_item([], STORE_ERROR_MSG, "store_error")]},
                            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return JSONResponse({"detail": [error_item([], str(exc), type_)]}, status_code=code)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(StoreError, _on_store_error)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """For route declarations: what a refusal looks like in the OpenAPI document."""
    return {code: {"model": ErrorResponse} for code in codes}
