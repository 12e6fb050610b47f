"""The ``Workload`` interface: what a model + data set must give the engine.

A workload turns its ``params`` (from the spec) into tensors for the train/val/test splits, the main-task
labels, and one target tensor per auxiliary task. Describing tasks (``describe_tasks``) must not need torch,
so the API can check specs without importing it; only ``build`` creates tensors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    import torch
    from torch import nn

TargetKind = Literal["soft", "real", "class", "probs", "domain"]

# Which losses fit which kind of target. "soft" targets are scores in [0, 1].
LOSSES_FOR_KIND: dict[str, tuple[str, ...]] = {
    "soft": ("bce", "mse"),
    "real": ("mse",),
    "class": ("ce",),
    "probs": ("kd",),
    "domain": ("mmd",),  # no labels: the discrepancy between source and target-domain features (tuner.engine.domain)
}


class WorkloadError(ValueError):
    """A workload cannot be built from its params; ``field`` names the spec field to fix."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class TaskInfo:
    """One auxiliary task a workload offers."""

    name: str
    kind: TargetKind
    dim: int = 1
    description: str = ""

    @property
    def losses(self) -> tuple[str, ...]:
        return LOSSES_FOR_KIND[self.kind]


@dataclass
class Split:
    """One data split: inputs, main-task class labels, and aux targets by task name."""

    x: torch.Tensor
    y: torch.Tensor
    aux: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device), {k: v.to(device) for k, v in self.aux.items()})

    def take(self, index: torch.Tensor) -> Split:
        return Split(self.x[index], self.y[index], {k: v[index] for k, v in self.aux.items()})


@runtime_checkable
class ItemDataset(Protocol):
    """A map-style data set (``torch.utils.data.Dataset``'s protocol) a workload may give for a split instead of a
    ``Split``: item ``i`` is ``(input tensor, main-task class, {aux task: target})`` (a target: a number or a
    tensor of the task's ``dim``). The engine trains from a ``DataLoader`` over it (``training.loader``), so the
    split is never held in memory at once.

    It may also define ``sample(index, seed) -> item``: the item with its random augmentation drawn from
    ``seed``. The engine then calls it on the training split with a seed per sample and epoch (a trial is
    reproducible whatever the loader's worker count); without it, ``dataset[i]`` runs with torch's global
    random generator seeded per sample the same way.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[Any, Any, dict[str, Any]]: ...


#: A split as a workload gives it: tensors in memory, or a data set read per item.
SplitData = Split | ItemDataset


@dataclass
class TargetDomain:
    """A target domain for domain adaptation: unlabelled ``train`` inputs (its labels are never read) and, when
    labels exist for it, ``val`` and ``test`` splits to measure the main task on."""

    train: Split
    val: Split | None = None
    test: Split | None = None

    def to(self, device: torch.device | str) -> TargetDomain:
        return TargetDomain(self.train.to(device), self.val.to(device) if self.val is not None else None,
                            self.test.to(device) if self.test is not None else None)


@dataclass
class WorkloadData:
    """Everything the engine needs to train: splits, shapes, the task list, and any target domain.

    A split is a ``Split`` (tensors in memory: small tables, and the fastest path) or an ``ItemDataset`` (read
    per item by a DataLoader); a workload gives all three of one kind. A target domain is tensors only.
    """

    train: SplitData
    val: SplitData
    test: SplitData
    input_shape: tuple[int, ...]
    n_classes: int
    tasks: dict[str, TaskInfo]
    class_names: list[str] = field(default_factory=list)
    target: TargetDomain | None = None

    @property
    def in_memory(self) -> bool:
        """Whether the splits are tensors (``Split``), not data sets read per item."""
        return isinstance(self.train, Split)

    def to(self, device: torch.device | str) -> WorkloadData:
        """The tensors moved to ``device``; data-set splits stay on the host (their batches move)."""
        def move(split: SplitData) -> SplitData:
            return split.to(device) if isinstance(split, Split) else split

        return WorkloadData(move(self.train), move(self.val), move(self.test),
                            self.input_shape, self.n_classes, self.tasks, self.class_names,
                            self.target.to(device) if self.target is not None else None)


class WorkloadParams(BaseModel):
    """Base of every workload's params model: unknown params are refused, and so are NaN and ±Infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Workload(ABC):
    """A named source of (model input, data splits, tasks). Register built-ins in ``tuner.workloads``;
    third-party workloads register through the entry-point group ``auxtune.workloads``.

    Subclasses set ``name``, ``description``, ``params_model``, and implement ``describe_tasks`` and
    ``build``. They may override ``build_trunk`` to bring their own shared trunk, or bring the whole model
    (``build_model``) and its optimiser (``configure_optimizers``): see docs/workloads.md, "Your own model".
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params_model: ClassVar[type[WorkloadParams]] = WorkloadParams
    #: params that hold file paths; a spec loaded from a file resolves them against the file's folder.
    path_params: ClassVar[tuple[str, ...]] = ()
    #: params of ``params_model`` that ``search.params`` may search (a width, a dropout): name → ``"float"``,
    #: ``"int"`` or ``"choice"``; each searched value is checked by ``params_model`` at submission.
    model_params: ClassVar[dict[str, Literal["float", "int", "choice"]]] = {}
    #: True when ``build`` gives data sets read per item (``images``): what needs every input in memory (a kd
    #: teacher's predictions) is then refused at submission, not only by the worker that builds the data.
    reads_per_item: ClassVar[bool] = False

    def __init__(self, params: dict[str, Any] | WorkloadParams | None = None):
        if isinstance(params, WorkloadParams):
            self.params = params
        else:
            self.params = self.params_model.model_validate(params or {})

    @abstractmethod
    def describe_tasks(self) -> dict[str, TaskInfo]:
        """The auxiliary tasks this workload offers, by name. Must not import torch."""

    @abstractmethod
    def build(self, aux_tasks: Sequence[str] = ()) -> WorkloadData:
        """Load or generate the data; deterministic given the params (split seed included). The splits are
        ``Split`` tensors, or ``ItemDataset`` s read per item (see ``WorkloadData``).

        Args:
            aux_tasks: the aux tasks the study uses; a workload may need them (``table`` drops per-sample
                target columns from its features) and must provide at least their targets.
        """

    def describe_shapes(self, aux_tasks: Sequence[str] = ()) -> tuple[tuple[int, ...], int] | None:
        """``(input shape, number of classes)`` of the data ``build(aux_tasks)`` would give, without torch, or None
        when that cannot be told without building (then a saved trunk or teacher is checked by the worker)."""
        return None

    def target_labelled(self) -> bool:
        """Whether this workload's target domain has labels for validation, so the ``target_val_*`` metrics can
        be measured (by default: whether it offers a ``domain`` task at all). Must not import torch."""
        return any(info.kind == "domain" for info in self.describe_tasks().values())

    def build_trunk(self, input_shape: tuple[int, ...], hidden: int) -> tuple[nn.Module, int] | None:
        """Return ``(trunk, feature_dim)`` to replace the default trunk, or None for the default."""
        return None

    def build_model(self, data: WorkloadData, aux_tasks: Sequence[str]) -> nn.Module | None:
        """The user's own module, or None for the engine's (trunk + linear heads). Its ``forward(x)`` returns a dict:
        ``"main"`` → the main task's logits ``(batch, n_classes)``, and each aux task in ``aux_tasks`` → its head's
        output ``(batch, dim)`` (or ``(batch,)`` when dim is 1). It may define ``shared_parameters()`` (the
        parameters every task shares), which the affinity probe and GradNorm need. Initialise it from torch's
        global generator (the engine seeds it per trial)."""
        return None

    def configure_optimizers(self, model: nn.Module, lr: float, weight_decay: float) -> Any:
        """The user's optimiser for ``model`` (an optimiser, or ``(optimiser, lr_scheduler)``, the scheduler stepped
        once per epoch), or None for the spec's ``training.optimizer`` and ``training.scheduler``."""
        return None

    @classmethod
    def brings_model(cls) -> bool:
        """Whether this workload overrides ``build_model`` (told without torch: for the spec's checks)."""
        return cls.build_model is not Workload.build_model

    @classmethod
    def brings_optimizer(cls) -> bool:
        """Whether this workload overrides ``configure_optimizers``."""
        return cls.configure_optimizers is not Workload.configure_optimizers
