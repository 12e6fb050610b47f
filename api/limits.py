"""Request body limits, enforced while the body streams in (before FastAPI parses or spools it).

A declared ``Content-Length`` over the limit is refused at once; a body without one (chunked) is counted as
it arrives and refused as soon as it passes the limit. Either way the client gets a 413 in the shared error
shape, and nothing of the body reaches a handler.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, error_item

#: Picks the limit (bytes) for a request from its method and path.
LimitFor = Callable[[str, str], int]


def _too_large_msg(limit: int, got: int | None) -> str:
    size = f"{got / 1e6:.1f} MB; " if got is not None else ""
    return f"the request body is {size}too large: the limit here is {limit} bytes ({limit / 1e6:.1f} MB)"


class BodyTooLarge(ApiError):
    def __init__(self, limit: int, got: int | None = None) -> None:
        super().__init__(413, _too_large_msg(limit, got), ["body"], "too_large")


class BodyLimitMiddleware:
    """Pure ASGI middleware: refuse bodies over ``limit_for(method, path)`` bytes with a 413."""

    def __init__(self, app: ASGIApp, limit_for: LimitFor) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            item = error_item(["body"], _too_large_msg(limit, declared), "too_large")
            # Tell the client we will not read the rest, so it does not keep sending a large body.
            await JSONResponse({"detail": [item]}, 413, headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions from body reading; the app's handler sends the 413.
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
