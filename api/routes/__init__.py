"""One router per resource; ``api_router`` gathers those served under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter

from api.routes import confirm, dashboard_data, datasets, pareto, studies, tokens, trials, workers, workloads

api_router = APIRouter()
for _module in (studies, pareto, trials, confirm, datasets, workloads, workers, tokens, dashboard_data):
    api_router.include_router(_module.router)
