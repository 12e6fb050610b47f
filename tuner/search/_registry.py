"""``make_backend``: the search backend a spec's ``search.algorithm`` names."""

from __future__ import annotations

from tuner.search._ax import AxBackend
from tuner.search._base import SearchBackend
from tuner.search._cmaes import CmaEsBackend
from tuner.search._gp import GPBackend
from tuner.search._grid import GridBackend
from tuner.search._multi import NSGA2Backend, NSGA3Backend, check_objectives
from tuner.search._qmc import QMCBackend
from tuner.search._random import RandomBackend
from tuner.search._tpe import TPEBackend
from tuner.spec import SpecError, StudySpec

BACKENDS: dict[str, type[SearchBackend]] = {
    cls.algorithm: cls
    for cls in (TPEBackend, GPBackend, CmaEsBackend, QMCBackend, RandomBackend, GridBackend, AxBackend,
                NSGA2Backend, NSGA3Backend)
}


def make_backend(spec: StudySpec) -> SearchBackend:
    """The backend for ``spec.search.algorithm``.

    Raises:
        SpecError: unknown algorithm, nothing to search, a package the algorithm needs is missing, or a
            multi-objective study the algorithm or pruner cannot run.
    """
    cls = BACKENDS.get(spec.search.algorithm)
    if cls is None:
        raise SpecError([(
            "search.algorithm",
            f"unknown algorithm {spec.search.algorithm!r}; allowed: {', '.join(BACKENDS)}",
        )])
    check_objectives(spec)
    return cls(spec)
