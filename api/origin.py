"""Without tokens (``--no-auth``), only this machine's own pages may talk to the API.

With auth off, a request needs nothing but to reach the port, and a browser on the same machine reaches it for
any site: a cross-site form can POST ``/pause`` (the browser sends it without asking), and DNS rebinding (a
name of the attacker's that resolves to 127.0.0.1) lets another site's scripts read the answers. Two checks
close that, in ``LocalOnlyMiddleware``:

* ``Host`` must name a loopback address (``localhost``, ``127.0.0.1``, ``[::1]``, with any port): ``--no-auth``
  serves on loopback only (``api.__main__``), so any other name is a rebinding.
* A state-changing request (POST, PUT, PATCH, DELETE) that carries an ``Origin`` must come from the same host
  and port as ``Host``: a page of this server, not of another site.

Both answer 403 naming the header. With auth on they are not applied: a cross-site form cannot send the bearer
token, and behind a reverse proxy ``Host`` is whatever the proxy names.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_item

#: Methods that change state: the only ones a cross-site form or script can use against us blind.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine's loopback."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host: str) -> str:
    """``"127.0.0.1:8000"`` → ``"127.0.0.1"``, ``"[::1]:8000"`` → ``"::1"``, ``"localhost"`` → ``"localhost"``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    return name if colon and port.isdigit() else host


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def local_only_problem(method: str, host: str | None, origin: str | None) -> tuple[str, str] | None:
    """``(header, why)`` if a request with these headers must be refused under ``--no-auth``, else None."""
    if host is None or not is_loopback(host_name(host)):
        return "Host", (f"the Host header {host!r} does not name this machine: without tokens (--no-auth) the "
                        "API answers only to localhost, 127.0.0.1 or [::1]; open it as http://127.0.0.1:<port>")
    if method in UNSAFE_METHODS and origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
            return "Origin", (f"a {method} from the page of another site (Origin {origin!r}) is refused: without "
                              f"tokens (--no-auth) only pages of this server ({host}) may change anything")
    return None


class LocalOnlyMiddleware:
    """Pure ASGI middleware: refuse, with a 403 naming the header, what ``local_only_problem`` refuses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = local_only_problem(scope["method"], _header(scope, b"host"), _header(scope, b"origin"))
            if problem is not None:
                header, msg = problem
                item = error_item(["header", header], msg, "forbidden")
                await JSONResponse({"detail": [item]}, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
