"""Workload registry: built-ins plus plugins from the entry-point group ``auxtune.workloads``.

Workloads are chosen only by registered name; nothing here imports a module path taken from a spec.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points

from pydantic import ValidationError

from tuner.workloads._base import (
    LOSSES_FOR_KIND,
    ItemDataset,
    Split,
    SplitData,
    TargetDomain,
    TaskInfo,
    Workload,
    WorkloadData,
    WorkloadError,
    WorkloadParams,
)
from tuner.workloads.digits import DigitsWorkload
from tuner.workloads.images import ImagesWorkload
from tuner.workloads.synthetic import SyntheticWorkload
from tuner.workloads.table import TableWorkload

__all__ = [
    "ENTRY_POINT_GROUP",
    "ItemDataset",
    "LOSSES_FOR_KIND",
    "Split",
    "SplitData",
    "TargetDomain",
    "TaskInfo",
    "Workload",
    "WorkloadData",
    "WorkloadError",
    "WorkloadParams",
    "get_workload",
    "make_workload",
    "registered_workloads",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "auxtune.workloads"
_BUILTINS: dict[str, type[Workload]] = {
    w.name: w for w in (DigitsWorkload, ImagesWorkload, SyntheticWorkload, TableWorkload)
}


@lru_cache(maxsize=1)
def _plugins() -> dict[str, type[Workload]]:
    found: dict[str, type[Workload]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BUILTINS:
            logger.warning("plugin workload %r ignored: the name is taken by a built-in", ep.name)
            continue
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the registry down
            logger.warning("plugin workload %r could not be loaded: %s", ep.name, exc)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Workload)):
            logger.warning("plugin workload %r ignored: %r is not a tuner.workloads.Workload", ep.name, cls)
            continue
        found[ep.name] = cls
    return found


def registered_workloads() -> dict[str, type[Workload]]:
    """All workloads by name: built-ins first, then plugins."""
    return {**_BUILTINS, **_plugins()}


def get_workload(name: str) -> type[Workload]:
    """The workload class registered as ``name``.

    Raises:
        KeyError: with the list of registered names.
    """
    registry = registered_workloads()
    if name not in registry:
        raise KeyError(f"unknown workload {name!r}; registered: {sorted(registry)}")
    return registry[name]


def make_workload(name: str, params: dict) -> Workload:
    """Instantiate a workload, turning bad params into a ``WorkloadError`` that names the field."""
    cls = get_workload(name)
    try:
        return cls(params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = sorted(cls.params_model.model_fields)
            msg = f"unknown param; {name} takes {allowed}"
        raise WorkloadError(f"workload.params.{loc}" if loc else "workload.params", msg) from None
