"""The app factory: ``create_app(settings)`` wires settings, store, error handlers, limits and routers.

``app`` (module level) is what ``uvicorn api.main:app`` serves, configured from ``AUXTUNE_*``; the store is
opened when the app starts (lifespan), not on import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.auth import bootstrap_admin_token
from api.config import API_PREFIX, Settings
from api.datasets import Datasets
from api.errors import install_error_handlers
from api.limits import BodyLimitMiddleware
from api.origin import LocalOnlyMiddleware
from api.routes import api_router, dashboard, docs, health
from storage import Store


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # pandas is imported once here, before any request: plotly (figures, the report) and the table checks
        # import it lazily from request threads, and plotly takes a *partially imported* pandas from sys.modules
        # when two threads race (AttributeError: partially initialized module 'pandas' ... -> a 500).
        import pandas  # noqa: F401

        store = Store(settings.db)
        try:
            bootstrap_admin_token(store, settings)
            app.state.datasets = Datasets(store, settings.data_dir)
            app.state.datasets.ensure_root()
            app.state.datasets.import_legacy()  # uploads an earlier version kept only on disk
            app.state.store = store
            yield
        finally:
            store.close()

    app = FastAPI(
        title="auxtune",
        summary="Tunes the loss weights λ of auxiliary tasks in multi-task networks",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # api.routes.docs serves /docs with Swagger UI's files from this server, not a CDN
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.settings = settings
    install_error_handlers(app)
    uploads = f"{API_PREFIX}/datasets"

    def body_limit(method: str, path: str) -> int:
        if method == "POST" and path.rstrip("/") == uploads:
            return settings.max_upload_bytes
        return settings.max_body_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    if not settings.auth:  # no tokens: only this machine's own pages may call (DNS rebinding, cross-site forms)
        app.add_middleware(LocalOnlyMiddleware)
    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(dashboard.router)
    app.include_router(docs.router)
    return app


app = create_app()
