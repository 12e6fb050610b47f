"""``/api/v1/workloads``: the registered workloads (built-ins and plugins) and the aux tasks they offer."""

from __future__ import annotations

from fastapi import APIRouter

from api.schemas import TaskPublic, WorkloadPublic, WorkloadsPublic
from tuner.workloads import registered_workloads

router = APIRouter(prefix="/workloads", tags=["workloads"])


@router.get("", response_model=WorkloadsPublic)
def read_workloads() -> WorkloadsPublic:
    """What ``workload.name`` may be. Public: it lists code, no one's data."""
    data = []
    for name, cls in registered_workloads().items():
        try:
            tasks = {t.name: TaskPublic(kind=t.kind, dim=t.dim, losses=list(t.losses), description=t.description)
                     for t in cls().describe_tasks().values()}
        except Exception:  # tasks that come from required params (table: your columns), or a broken plugin
            tasks = {}
        data.append(WorkloadPublic(name=name, description=cls.description,
                                   params=cls.params_model.model_json_schema(), path_params=list(cls.path_params),
                                   tasks=tasks))
    return WorkloadsPublic(data=data, count=len(data))
