"""Hostile specs (issue #14): each would kill, hang or mislead a worker or the API; each must be refused naming the
field. One catalog, run against ``parse_spec`` and ``auxtune validate`` (tests/tuner/test_spec_limits.py) and
``POST /api/v1/studies`` (tests/api/test_bad_input.py), each on its own base spec."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from tuner.spec.limits import MAX_SEED


@dataclass(frozen=True)
class HostileSpec:
    id: str
    #: ``{"search.seed": 2**32, "aux_tasks.0.name": "a.b"}``: values set into a copy of a base spec.
    changes: dict[str, Any]
    #: the field the refusal must name, dotted (``search.seed``).
    loc: str
    words: tuple[str, ...] = ()

    def apply(self, base: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for path, value in self.changes.items():
            node: Any = out
            *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
            for p in parents:
                if isinstance(node, dict):
                    node = node.setdefault(p, {})
                else:
                    node = node[p]
            node[last] = value
        return out

    @property
    def loc_list(self) -> list[str | int]:
        return [int(p) if p.isdigit() else p for p in self.loc.split(".")]


LE = "less than or equal"
GE = "greater than or equal"
HOSTILE_SPECS = [
    # 1: a grid the API would build to count its trials
    HostileSpec("grid bomb", {"search.algorithm": "grid", "search.grid_points": 1_000_000}, "search.grid_points",
                (LE,)),
    HostileSpec("grid too large", {"search.algorithm": "grid", "search.grid_points": 2000}, "search.grid_points",
                ("4000000 grid points", "at most 10000", "lower search.grid_points")),
    # 3: numbers a library refuses inside every worker
    HostileSpec("search seed past 2**32", {"search.seed": 2**32}, "search.seed", (LE, str(MAX_SEED))),
    HostileSpec("search seed negative", {"search.seed": -1}, "search.seed", (GE,)),
    HostileSpec("training seed past 2**32", {"training.seed": 2**32}, "training.seed", (LE,)),
    HostileSpec("data seed negative", {"workload.params.data_seed": -1}, "workload.params.data_seed", (GE,)),
    HostileSpec("λ huge", {"aux_tasks.0.lambda": {"low": 0.0, "high": 1e300}}, "aux_tasks.0.lambda.high", (LE,)),
    HostileSpec("kd temperature zero", {"aux_tasks.0.temperature": 0.0}, "aux_tasks.0.temperature", (GE,)),
    HostileSpec("lr huge", {"training.lr": 1e9}, "training.lr", (LE,)),
    HostileSpec("lr NaN", {"training.lr": float("nan")}, "training.lr", ("finite",)),
    HostileSpec("weight decay huge", {"training.weight_decay": 1e6}, "training.weight_decay", (LE,)),
    HostileSpec("gate lr huge", {"sanity.lr": 1e9}, "sanity.lr", (LE,)),
    HostileSpec("affinity lr huge", {"affinity.lr": 1e9}, "affinity.lr", (LE,)),
    HostileSpec("gradnorm alpha huge", {"arms": [{"name": "gradnorm", "alpha": 1e9}]}, "arms.0.alpha", (LE,)),
    HostileSpec("dwa temperature huge", {"arms": [{"name": "dwa", "temperature": 1e9}]}, "arms.0.temperature",
                (LE,)),
    HostileSpec("harmful scale huge", {"workload.params.harmful_scale": 1e300}, "workload.params.harmful_scale",
                (LE,)),
    # 4: loops that would not end
    HostileSpec("epochs 1e9", {"training.epochs": 10**9}, "training.epochs", (LE,)),
    HostileSpec("gate steps 1e9", {"sanity.max_steps": 10**9}, "sanity.max_steps", (LE,)),
    HostileSpec("patience 1e9", {"training.patience": 10**9}, "training.patience", (LE,)),
    HostileSpec("pruner warm-up 1e9", {"search.pruner": {"name": "median", "warmup_epochs": 10**9}},
                "search.pruner.warmup_epochs", (LE,)),
    HostileSpec("n_trials × epochs", {"search.n_trials": 100_000, "training.epochs": 1000}, "search.n_trials",
                ("n_trials × training.epochs", "lower search.n_trials or training.epochs")),
    HostileSpec("population × epochs", {"population.size": 1024, "training.epochs": 1000}, "population.size",
                ("member-epochs", "lower population.size or training.epochs")),
    HostileSpec("confirmation × epochs", {"search.n_trials": 10, "training.epochs": 10_000,
                                          "confirm": {"seeds": 1000, "top_k": 20}}, "confirm.seeds",
                ("confirmation", "lower confirm.seeds")),
    # 10: memory
    HostileSpec("hidden huge", {"training.hidden": 10**6}, "training.hidden", (LE,)),
    HostileSpec("batch huge", {"training.batch_size": 10**9}, "training.batch_size", (LE,)),
    HostileSpec("loader workers huge", {"training.loader.num_workers": 10**6}, "training.loader.num_workers", (LE,)),
    HostileSpec("accumulate huge", {"training.accumulate": 10**9}, "training.accumulate", (LE,)),
    HostileSpec("grad clip NaN", {"training.grad_clip": float("nan")}, "training.grad_clip", ("finite",)),
    HostileSpec("warm-up 1e9", {"training.scheduler": {"name": "cosine", "warmup_epochs": 10**9}},
                "training.scheduler.warmup_epochs", (LE,)),
    HostileSpec("checkpoint_every negative", {"training.checkpoint_every": -1}, "training.checkpoint_every",
                ("an epoch count",)),
    HostileSpec("population with a schedule", {"population.size": 4, "training.scheduler": "cosine"},
                "population.size", ("spec's optimiser only", "training.scheduler")),
    HostileSpec("n_train huge", {"workload.params.n_train": 10**9}, "workload.params.n_train", (LE,)),
    HostileSpec("dim huge", {"workload.params.dim": 10**6}, "workload.params.dim", (LE,)),
    HostileSpec("synthetic data too large", {"workload.params.n_train": 100_000, "workload.params.dim": 1000},
                "workload.params", ("generated numbers", "lower the sample counts or dim")),
    # 15: specs that validate but cannot run
    HostileSpec("aux task named with a dot", {"aux_tasks.0.name": "a.b"}, "aux_tasks.0.name",
                ("letters, digits, _ and -",)),
    HostileSpec("aux task named main", {"aux_tasks.0.name": "main"}, "aux_tasks.0.name", ("reserved",)),
    HostileSpec("fewer trials than controls", {"search.n_trials": 1}, "search.n_trials",
                ("2 control trials", "at least 2", "search.controls: false")),
]
