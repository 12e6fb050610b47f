"""``/api/v1/workers``: the registered worker processes, whether they are alive, what they run."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentPrincipal, SettingsDep, StoreDep
from api.errors import error_responses
from api.schemas import WorkersPublic
from api.views import worker_public

router = APIRouter(prefix="/workers", tags=["workers"])


@router.get("", response_model=WorkersPublic, responses=error_responses(401))
def read_workers(store: StoreDep, settings: SettingsDep, _: CurrentPrincipal) -> WorkersPublic:
    """Every registered worker: id, host, device (and the GPU it was given: host index, name, memory), current
    trial, last heartbeat; ``alive`` if it beat within ``AUXTUNE_WORKER_ALIVE_S`` seconds and, on this host, its
    process still exists (``tuner.execution.liveness``)."""
    data = [worker_public(w, settings.worker_alive_s) for w in store.workers()]
    return WorkersPublic(data=data, count=len(data))
