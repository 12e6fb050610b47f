"""Search backends: one ``SearchBackend`` interface, one module per algorithm (optuna samplers and Ax)."""

from __future__ import annotations

from tuner.search._ax import AX_INIT_TRIALS, AxBackend, AxSampler
from tuner.search._base import CONTROL_ATTR, SearchBackend, pruning_step
from tuner.search._cmaes import CmaEsBackend
from tuner.search._gp import GPBackend
from tuner.search._grid import GridBackend, LambdaGridSampler
from tuner.search._multi import NSGA2Backend, NSGA3Backend
from tuner.search._qmc import QMCBackend
from tuner.search._random import RandomBackend
from tuner.search._reevaluate import REEVALUATES_ATTR, reevaluation_due
from tuner.search._registry import BACKENDS, make_backend
from tuner.search._snapshot import SnapshotPruner, curve_warmup, first_pruning_step, warmup_epochs, warmup_range
from tuner.search._tpe import TPEBackend

__all__ = [
    "AX_INIT_TRIALS",
    "BACKENDS",
    "CONTROL_ATTR",
    "REEVALUATES_ATTR",
    "AxBackend",
    "AxSampler",
    "CmaEsBackend",
    "GPBackend",
    "GridBackend",
    "LambdaGridSampler",
    "NSGA2Backend",
    "NSGA3Backend",
    "QMCBackend",
    "RandomBackend",
    "SearchBackend",
    "SnapshotPruner",
    "TPEBackend",
    "curve_warmup",
    "first_pruning_step",
    "make_backend",
    "pruning_step",
    "reevaluation_due",
    "warmup_epochs",
    "warmup_range",
]
