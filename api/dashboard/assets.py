"""The dashboard's templates and static files, all served from this package; plotly.js from the installed
``plotly`` package (``plotly.offline.get_plotlyjs``), never from a CDN: these machines and many clusters are
offline, and a page that loads nothing from elsewhere leaks nothing either.

Responses are gzipped here when the browser accepts it (plotly.js: 4.8 MB → 1.4 MB; a 10 000-trial study's
state: ~5x smaller), so no app-wide middleware is needed; static files carry an ETag and a cache lifetime.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from fastapi import Request, Response

#: Static files the pages load (anything else under /dashboard/static is a 404).
STATIC_FILES = {"dashboard.css": "text/css", "common.js": "text/javascript", "studies.js": "text/javascript",
                "study.js": "text/javascript", "trust.js": "text/javascript", "plotly.min.js": "text/javascript"}
#: Smaller bodies are not worth compressing.
GZIP_MIN_BYTES = 1024
#: The dashboard's pages load scripts and styles of this server only and talk to it only; plotly.js needs
#: inline styles, and ``eval`` for its WebGL traces (parallel coordinates).
PAGE_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'self'")

_env = jinja2.Environment(loader=jinja2.PackageLoader("api.dashboard", "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)


@dataclass
class Asset:
    """A static file with its content type and ETag; gzipped on first need (plotly.js: ~0.3 s)."""

    body: bytes
    media_type: str
    etag: str
    _gzipped: bytes | None = None

    @property
    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, 6)
        return self._gzipped


def render(template: str, **context: Any) -> str:
    """A page or the report from ``templates/`` (autoescaped)."""
    return _env.get_template(template).render(asset_version=asset_version(), **context)


@functools.cache
def plotly_js() -> str:
    """The minified plotly.js bundled with the installed ``plotly`` package."""
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def asset(name: str) -> Asset | None:
    """The static file ``name`` (``None`` if it is not one of ``STATIC_FILES``)."""
    return _load(name) if name in STATIC_FILES else None  # only known names reach the cache


@functools.cache
def _load(name: str) -> Asset:
    media_type = STATIC_FILES[name]
    if name == "plotly.min.js":
        body = plotly_js().encode()
    else:
        body = (resources.files("api.dashboard") / "static" / name).read_bytes()
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:24] + '"')


@functools.cache
def asset_version() -> str:
    """Changes when any static file changes: pages add it to asset URLs, so browsers may cache those for long."""
    digest = hashlib.sha256()
    for name in sorted(STATIC_FILES):
        digest.update(asset(name).etag.encode())  # type: ignore[union-attr]
    return digest.hexdigest()[:12]


def respond(request: Request, body: bytes, media_type: str, headers: dict[str, str] | None = None,
            gzipped: bytes | None = None) -> Response:
    """``body`` gzipped when the client accepts it and it is worth it (``gzipped``: already compressed)."""
    headers = {"Vary": "Accept-Encoding", **(headers or {})}
    if len(body) >= GZIP_MIN_BYTES and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(gzipped if gzipped is not None else gzip.compress(body, 5), media_type=media_type,
                        headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def static_response(request: Request, found: Asset) -> Response:
    """A static file: 304 when the client has it (``If-None-Match``), else its body, cacheable for a day."""
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers={"ETag": found.etag})
    headers = {"ETag": found.etag, "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}
    return respond(request, found.body, found.media_type, headers, gzipped=found.gzipped)


def json_response(request: Request, payload: Any) -> Response:
    """``payload`` as compact JSON (never cached: it is live data), gzipped when accepted."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str).encode()
    return respond(request, body, "application/json", {"Cache-Control": "no-store"})


def script_json(payload: Any) -> str:
    """JSON safe to place inside an HTML ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
