"""One router per resource; ``api_router`` gathers those served under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import datasets, studies, tokens, trials, workers, workloads

api_router = APIRouter()
for _module in (studies, trials, datasets, workloads, workers, tokens):
    api_router.include_router(_module.router)
