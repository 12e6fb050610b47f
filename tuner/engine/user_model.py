"""A workload's own module (``Workload.build_model``) in the engine: its wrapper, and the checks of its contract.

The user's ``forward(x)`` returns ``{"main": logits, <aux task>: output, ...}``; ``UserModule`` wraps it so the loop,
the gate, the callbacks and the checkpoints treat it like the engine's ``MultiTaskModel`` (``param_groups``, and the
``shared_parameters`` the affinity probe and GradNorm need, when the module has them). ``check_module`` builds it
once on a tiny batch when a study is prepared (``auxtune validate``, a worker's study preparation) and refuses a
module whose outputs miss a task or have the wrong shape, naming the task and the shape expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tuner.engine.losses import MAIN
from tuner.spec import StudySpec
from tuner.workloads import Split, WorkloadData, WorkloadError

#: The spec field a broken module's refusal names.
FIELD = "workload.build_model"


class UserModule(nn.Module):
    """The user's module, as the engine trains it: ``forward`` is the user's; every parameter trains at ``lr``."""

    trunk_frozen: bool = False

    def __init__(self, net: nn.Module, tied: Sequence[str] = ()):
        super().__init__()
        self.net = net
        #: kd tasks distilled from a saved teacher: their output is the main task's (``tuner.engine.saved``).
        self.tied = list(tied)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = self.net(x)
        if self.tied and isinstance(out, dict):
            out = {**out, **{t: out[MAIN] for t in self.tied}}
        return out

    def param_groups(self, lr: float) -> Any:
        return self.net.parameters()

    @property
    def has_shared(self) -> bool:
        return callable(getattr(self.net, "shared_parameters", None))

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters every task shares (the module's ``shared_parameters()``), trainable ones only."""
        if not self.has_shared:
            raise ValueError("this workload's module has no shared_parameters()")
        shared: Any = self.net.shared_parameters
        return [p for p in shared() if p.requires_grad]


def expected_shapes(data: WorkloadData, aux_tasks: Sequence[str], n: int) -> dict[str, tuple[int, ...]]:
    """The output shape each task's entry must have on a batch of ``n``: ``(n, n_classes)`` for ``main``,
    ``(n, dim)`` for an aux task (``(n,)`` also taken when dim is 1)."""
    shapes: dict[str, tuple[int, ...]] = {MAIN: (n, data.n_classes)}
    shapes.update({t: (n, data.tasks[t].dim) for t in aux_tasks})
    return shapes


def output_problems(out: Any, expected: dict[str, tuple[int, ...]]) -> list[str]:
    """What is wrong with one forward pass's outputs ``out``: a missing task or a wrong shape, worded per task."""
    if not isinstance(out, dict):
        return [f"forward(x) must return a dict of task → tensor, got {type(out).__name__}"]
    problems = []
    for task, shape in expected.items():
        got = out.get(task)
        if not isinstance(got, torch.Tensor):
            problems.append(f"task {task!r}: forward(x) gave no tensor for it; expected shape {list(shape)}")
        elif tuple(got.shape) != shape and not (shape[1:] == (1,) and tuple(got.shape) == shape[:1]):
            problems.append(f"task {task!r}: output of shape {list(got.shape)}, expected {list(shape)}")
    return problems


def refusals(spec: StudySpec, module: UserModule) -> list[str]:
    """What ``spec`` asks that needs the module's ``shared_parameters()`` when it has none."""
    if module.has_shared:
        return []
    out = []
    if spec.affinity.every > 0 and spec.aux_tasks:
        out.append("the affinity probe needs the module's shared_parameters(); define it on the module, or set "
                   "affinity.every: 0")
    if any(arm.name == "gradnorm" for arm in spec.arms):
        out.append("the gradnorm arm needs the module's shared_parameters(); define it on the module, or drop "
                   "gradnorm from arms")
    return out


def check_module(spec: StudySpec, module: UserModule, batch: Split, data: WorkloadData) -> None:
    """Run ``module`` once on ``batch`` (in eval mode, without gradients) and refuse what breaks the contract.

    Raises:
        WorkloadError: on field ``workload.build_model``, each problem worded with its task and the expected shape.
    """
    aux = [t.name for t in spec.aux_tasks if t.teacher is None]
    problems = refusals(spec, module)
    module.eval()
    try:
        with torch.no_grad():
            problems += output_problems(module(batch.x), expected_shapes(data, aux, len(batch)))
    except Exception as exc:  # the user's forward breaks on a batch of the workload's inputs
        problems.append(f"forward(x) failed on a batch of inputs of shape {list(batch.x.shape)}: "
                        f"{type(exc).__name__}: {exc}")
    finally:
        module.train()
    if problems:
        raise WorkloadError(FIELD, "; ".join(problems))
