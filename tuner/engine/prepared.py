"""The prepared study: a spec with its workload's data built and placed on the device, and its new models.

One worker reuses it across the trials of a study (the data are built once per process: ``prepare`` caches
them), and the single and the population paths both build their models from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import torch
from torch import nn

from tuner.engine.batches import SplitBatches
from tuner.engine.controls import check_precision, make_optimisers
from tuner.engine.domain import with_target_domain
from tuner.engine.model import MultiTaskModel, build_model, resolve_device
from tuner.engine.optim import make_optimizer
from tuner.engine.saved import SavedModel, rebuild_trunk, start_trunk, tie_kd_heads
from tuner.engine.user_model import FIELD, UserModule, check_module
from tuner.spec import StudySpec
from tuner.spec.references import workload_aux_tasks
from tuner.workloads import Split, Workload, WorkloadData, WorkloadError, make_workload


@dataclass
class PreparedStudy:
    """A spec with its data built and moved to the device, reused across the trials of one worker.

    ``trunk`` is the saved model whose trunk new models start from, and a kd task with a teacher has the
    teacher's predictions among the splits' targets: both are filled by ``tuner.engine.transfer.with_saved_models``.
    Each split's batches come from ``batches(name)`` (``tuner.engine.batches``: tensors or a DataLoader, made once
    and kept, so a loader's persistent workers serve every trial of the study).
    """

    spec: StudySpec
    workload: Workload
    data: WorkloadData
    device: torch.device
    trunk: SavedModel | None = None
    _batches: dict[str, SplitBatches] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def task_losses(self) -> dict[str, str]:
        return {t.name: t.loss for t in self.spec.aux_tasks}

    @property
    def temperatures(self) -> dict[str, float]:
        return {t.name: t.temperature for t in self.spec.aux_tasks}

    def new_model(self, seed: int, trunk_mode: str | None = None) -> MultiTaskModel:
        """A freshly initialised model; with ``trunk``, its trunk starts from the saved one in ``trunk_mode``
        (default: the spec's first mode). A workload that brings its own module (``build_model``) gets it wrapped
        (``tuner.engine.user_model.UserModule``), initialised from torch's generator seeded with ``seed``."""
        torch.manual_seed(seed)
        spec = self.spec
        if self.workload.brings_model():
            return self._user_module()  # type: ignore[return-value]  # the loop's model protocol, not its class
        unloaded = [t.teacher for t in spec.aux_tasks if t.teacher is not None and t.name not in self.data.tasks]
        unloaded += [spec.trunk.from_trial] if spec.trunk is not None and self.trunk is None else []
        if unloaded:
            raise ValueError(f"the saved model(s) {unloaded} are not loaded; prepare the study with "
                             "tuner.engine.transfer.with_saved_models(prep, store)")
        tasks = {t.name: self.data.tasks[t.name] for t in spec.aux_tasks}
        if self.trunk is not None:
            trunk: tuple[nn.Module, int] | None = (rebuild_trunk(self.trunk.meta), int(self.trunk.meta["feature_dim"]))
        else:
            trunk = self.workload.build_trunk(self.data.input_shape, spec.training.hidden)
        model = build_model(self.data.input_shape, self.data.n_classes, tasks, spec.training.hidden, trunk)
        model = tie_kd_heads(with_target_domain(model, self.data, self.task_losses, seed), spec)
        if self.trunk is not None and spec.trunk is not None:
            mode = trunk_mode or spec.trunk.modes()[0]
            model = start_trunk(model, self.trunk, mode, spec.trunk.lr_factor)
        return model.to(self.device)

    def _user_module(self) -> UserModule:
        tied = [t.name for t in self.spec.aux_tasks if t.teacher is not None]
        own = [t.name for t in self.spec.aux_tasks if t.teacher is None]
        net = self.workload.build_model(self.data, own)
        if not isinstance(net, nn.Module):
            raise WorkloadError(FIELD, f"build_model returned {type(net).__name__}, not a torch.nn.Module")
        return UserModule(net, tied).to(self.device)

    def gate_optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        """The sanity gate's optimiser for ``model`` at ``lr``: the workload's own, or the spec's (no schedule)."""
        if not self.workload.brings_optimizer():  # no LambdaLR: its warm-up would scale the gate's lr at creation
            return make_optimizer(model.param_groups(lr), self.spec.training, lr)  # type: ignore[operator]
        return make_optimisers(self.workload, model, self.spec.training, lr)[0]

    def check_user_module(self) -> None:
        """Build the workload's own module once and refuse it if it breaks the contract (``check_module``); the
        caller's random streams are left as they were."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.spec.training.seed)
            module = self._user_module()
            check_module(self.spec, module, self.sanity_batch(self.spec.training.seed), self.data)
            self.gate_optimizer(module, self.spec.training.lr)  # refuses what configure_optimizers should not give

    def batches(self, split: Literal["train", "val", "test"]) -> SplitBatches:
        """The batches of one split: ``train`` in a seeded random order (``restart`` it per trial), the others in
        order."""
        if split not in self._batches:
            training = self.spec.training
            self._batches[split] = SplitBatches(getattr(self.data, split), self.device, training.batch_size,
                                                training.loader, split == "train", self.data.input_shape)
        return self._batches[split]

    def data_seed(self, seed: int) -> int:
        """The seed of a trial's minibatch order (and augmentation): the trial's own ``seed`` on in-memory splits;
        on data-set splits the study's ``training.seed``, shared by every trial of the study, so that a population
        reads and decodes each batch once for all its members (and λ sets are compared on the same batches). A
        confirmation run passes its own seed instead (``tuner.engine.runs``)."""
        return seed if self.data.in_memory else self.spec.training.seed

    def sanity_batch(self, seed: int) -> Split:
        """The sanity gate's one fixed minibatch, drawn from its own generator seeded with ``seed`` (un-augmented;
        reading it leaves torch's global generator as it was)."""
        g = torch.Generator().manual_seed(seed)
        n = min(self.spec.sanity.batch_size, len(self.data.train))
        return self.batches("train").take(torch.randperm(len(self.data.train), generator=g)[:n])


@lru_cache(maxsize=8)
def _build_data(workload_name: str, params_json: str, aux_tasks: tuple[str, ...]) -> tuple[Workload, WorkloadData]:
    workload = make_workload(workload_name, json.loads(params_json))
    return workload, workload.build(aux_tasks)


def prepare(spec: StudySpec, device: str | torch.device | None = None) -> PreparedStudy:
    """Build (or reuse) the workload's data for ``spec`` and place it on the device.

    A spec that names saved models (``trunk``, a kd ``teacher``) needs them too: pass the result through
    ``tuner.engine.transfer.with_saved_models(prep, store)``.
    """
    params_json = json.dumps(spec.workload.params, sort_keys=True, default=str)
    aux = workload_aux_tasks(spec)
    workload, data = _build_data(spec.workload.name, params_json, aux)
    dev = resolve_device(str(device)) if device is not None else resolve_device(spec.training.device)
    check_precision(spec.training, dev)
    prep = PreparedStudy(spec=spec, workload=workload, data=data.to(dev), device=dev)
    if workload.brings_model():
        prep.check_user_module()
    return prep
