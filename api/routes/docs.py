"""``/docs``: Swagger UI for the API, with its script and styles served by this server, never a CDN.

FastAPI's own ``/docs`` loads swagger-ui from cdn.jsdelivr.net, so on a machine without internet (a lab
cluster, an air-gapped GPU box) the page stayed blank. The files come from the installed ``fastapi-offline``
package instead (only its static files are used), under ``/docs/static/``; the page's Content-Security-Policy
lets it load nothing from anywhere else.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from api.config import API_PREFIX
from api.dashboard.assets import Asset, static_response
from api.errors import ApiError

router = APIRouter(prefix="/docs", include_in_schema=False)

#: The Swagger UI files a page needs, with their content types (anything else under /docs/static is a 404).
SWAGGER_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
STATIC = "/docs/static"
#: Swagger UI starts itself from an inline script and draws icons as data: images; all else is this server's.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")


@functools.cache
def swagger_file(name: str) -> Asset:
    body = (resources.files("fastapi_offline") / "static" / name).read_bytes()
    return Asset(body, SWAGGER_FILES[name], '"' + hashlib.sha256(body).hexdigest()[:24] + '"')


@router.get("", response_class=HTMLResponse)
def read_docs() -> HTMLResponse:
    """The interactive API reference (the "Authorize" button takes a bearer token)."""
    page = get_swagger_ui_html(openapi_url=f"{API_PREFIX}/openapi.json", title="auxtune API",
                               swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
                               swagger_css_url=f"{STATIC}/swagger-ui.css",
                               swagger_favicon_url=f"{STATIC}/favicon.png", oauth2_redirect_url=None)
    page.headers["Content-Security-Policy"] = DOCS_CSP
    return page


@router.get("/static/{name}")
def read_docs_static(request: Request, name: str) -> Response:
    """Swagger UI's script, styles and icon, from the installed fastapi-offline package."""
    if name not in SWAGGER_FILES:
        raise ApiError(404, f"no static file {name!r}", ["path", "name"], "not_found")
    return static_response(request, swagger_file(name))
