"""``/docs`` works offline: the page loads Swagger UI's script, styles and icon from this server only."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.dashboard.assets import PAGE_CSP

URL = re.compile(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""")


def test_the_docs_page_loads_only_files_of_this_server_and_they_answer(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    urls = set(URL.findall(page.text))
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css", "/api/v1/openapi.json"} <= urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not of this server"
        r = client.get(url)
        assert r.status_code == 200 and r.content, url
    assert "cdn" not in page.text.lower()
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "http" not in csp  # the browser may load nothing from elsewhere
    assert client.get("/docs/static/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/docs/static/../main.py").status_code == 404
    assert client.get("/docs/static/redoc.standalone.js").status_code == 404  # only the files the page needs


def test_the_dashboard_keeps_its_own_policy(client: TestClient) -> None:
    assert client.get("/dashboard/studies").headers["Content-Security-Policy"] == PAGE_CSP
