"""Saved models of finished trials, reused: a pretrained trunk to start from, and a teacher to distil.

- **Saving** (``artifacts.save: all | best``): after a trial completes, the worker stores its model (best epoch)
  in the store's ``auxtune_artifacts`` table: ``torch.save`` of the ``state_dict`` (on the CPU) plus a meta
  document (``model_meta``) that says how to rebuild it: ``architecture`` (the workload whose trunk it is, its
  params, the trunk width ``hidden``), ``input_shape``, ``n_classes``, ``feature_dim`` and the ``heads``.
- **Trunk** (``trunk: {from_trial: <study>/<n>, mode}``): the new model's trunk is rebuilt from the saved
  model's meta (so its width is the saved one's, whatever ``training.hidden`` says) and takes its weights; the
  heads are the new study's, fresh. ``freeze``: the trunk's parameters do not train (no gradient, not in the
  optimiser) and the trunk stays in eval mode; ``finetune``: everything trains at ``training.lr``;
  ``finetune_lower_lr``: the trunk at ``training.lr × trunk.lr_factor``.
- **Distillation** (an aux task ``{loss: kd, teacher: <study>/<n>, temperature: T}``): the teacher (rebuilt
  from its meta, so it may be wider than the student) predicts every train, validation and test input once per
  prepared study; its main-task probabilities softened at ``T`` become the task's targets, and the task's
  output is the student's own main-head logits (its head *is* the main head): ``λ_kd · T² · KL(teacher ‖
  student)`` is classic knowledge distillation (Hinton et al. 2015), with λ_kd searched like any λ.

Loading uses ``torch.load(..., weights_only=True)``: a saved model is tensors, never code. Starting a new
model from a saved one (``SavedModel``, the trunk's modes, tied kd heads) is ``tuner.engine.saved``'s: the
prepared study builds on it, and this module on the prepared study.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel
from tuner.engine.saved import SavedModel, rebuild_trunk
from tuner.spec.references import find_saved_model, saved_model_refs, shape_problem
from tuner.spec.transfer import split_trial_ref, teacher_needs_memory
from tuner.workloads import Split, SplitData, TaskInfo, WorkloadData

if TYPE_CHECKING:
    from storage import Store
    from tuner.engine.prepared import PreparedStudy

logger = logging.getLogger(__name__)

FORMAT = "torch.state_dict"


class TransferError(ValueError):
    """A saved model cannot be used as the spec asks (missing, or of another shape); ``field`` names the spec field."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


# -- saving ----------------------------------------------------------------------------------------------------
def model_meta(prep: PreparedStudy, model: MultiTaskModel) -> dict[str, Any]:
    """What it takes to rebuild ``model`` without its study's data: see the module docstring."""
    spec = prep.spec
    heads = {name: int(head.out_features) for name, head in model.heads.items() if isinstance(head, nn.Linear)}
    saved = prep.trunk  # a trunk started from a saved model has that model's architecture
    architecture = saved.meta["architecture"] if saved is not None else {
        "workload": spec.workload.name, "workload_params": spec.workload.params, "hidden": spec.training.hidden}
    return {
        "architecture": architecture,
        "workload": spec.workload.name,
        "input_shape": list(prep.data.input_shape),
        "n_classes": prep.data.n_classes,
        "feature_dim": heads_in_features(model),
        "heads": heads,
        "class_names": list(prep.data.class_names),
        "trunk_from": None if saved is None else saved.ref,
        "torch": torch.__version__,
    }


def heads_in_features(model: MultiTaskModel) -> int:
    """The width of the trunk's features, as the main head reads them."""
    head = model.heads[MAIN]
    assert isinstance(head, nn.Linear)
    return int(head.in_features)


def model_bytes(model: nn.Module) -> bytes:
    """``torch.save`` of the model's ``state_dict``, moved to the CPU (loadable on any device)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    return buffer.getvalue()


def save_trial_model(store: Store, study_id: int, number: int, prep: PreparedStudy, model: MultiTaskModel,
                     best: bool = False) -> None:
    """Store ``model`` as trial ``number``'s saved model (``best``: as the study's one saved model, if the trial
    is still its best: ``Store.save_best_artifact``)."""
    meta, state = model_meta(prep, model), model_bytes(model)
    if best:
        store.save_best_artifact(study_id, number, meta, state, FORMAT)
    else:
        store.save_artifact(study_id, number, meta, state, FORMAT)


# -- loading ---------------------------------------------------------------------------------------------------
def load_saved_model(store: Store, ref: str, field: str) -> SavedModel:
    """The saved model ``ref`` (``<study>/<n>``) names, its tensors on the CPU.

    Raises:
        TransferError: naming ``field``, when there is no such saved model.
    """
    try:
        find_saved_model(store, ref)
    except LookupError as exc:
        raise TransferError(field, str(exc.args[0])) from None
    record, blob = store.load_artifact(*split_trial_ref(ref))
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    return SavedModel(ref=ref, meta=dict(record.meta), state=state)


def teacher_model(saved: SavedModel) -> nn.Module:
    """The saved model's trunk and main head, in eval mode (a teacher needs nothing else)."""
    trunk = rebuild_trunk(saved.meta)
    trunk.load_state_dict(saved.part("trunk."))
    head = nn.Linear(int(saved.meta["feature_dim"]), int(saved.meta["n_classes"]))
    head.load_state_dict(saved.part(f"heads.{MAIN}."))
    return nn.Sequential(trunk, head).eval()


@torch.no_grad()
def teacher_probs(teacher: nn.Module, x: torch.Tensor, temperature: float, chunk: int = 4096) -> torch.Tensor:
    """The teacher's main-task probabilities on ``x``, softened at ``temperature``."""
    parts = [torch.softmax(teacher(x[i:i + chunk]) / temperature, dim=-1) for i in range(0, len(x), chunk)]
    return torch.cat(parts) if parts else x.new_zeros((0, 0))


def with_saved_models(prep: PreparedStudy, store: Store) -> PreparedStudy:
    """``prep`` with the saved models its spec names: the trunk to start from, and each kd teacher's softened
    predictions on every split as that task's targets. ``prep`` itself when the spec names none.

    Raises:
        TransferError: a reference the store cannot serve, or a model of another input shape or class count.
    """
    spec = prep.spec
    if not saved_model_refs(spec):
        return prep
    trunk = None
    if spec.trunk is not None:
        trunk = load_saved_model(store, spec.trunk.from_trial, "trunk.from_trial")
        _check_shape(trunk, "trunk.from_trial", prep.data.input_shape, None)
    data = prep.data
    for i, task in enumerate(spec.aux_tasks):
        if task.teacher is None:
            continue
        field = f"aux_tasks.{i}.teacher"
        if not data.in_memory:
            raise TransferError(field, teacher_needs_memory(spec.workload.name))
        saved = load_saved_model(store, task.teacher, field)
        _check_shape(saved, field, data.input_shape, data.n_classes)
        teacher = teacher_model(saved).to(prep.device)
        data = _with_targets(data, task.name, lambda x, t=teacher, T=task.temperature: teacher_probs(t, x, T))
        logger.info("kd task %s: teacher %s predicted %d inputs", task.name, task.teacher,
                    len(data.train) + len(data.val) + len(data.test))
    return dataclasses.replace(prep, data=data, trunk=trunk)


def _check_shape(saved: SavedModel, field: str, input_shape: tuple[int, ...], n_classes: int | None) -> None:
    problem = shape_problem(saved.meta, saved.ref, input_shape, n_classes)
    if problem:
        raise TransferError(field, problem)


def _with_targets(data: WorkloadData, task: str, predict: Any) -> WorkloadData:
    def split(s: SplitData) -> Split:
        assert isinstance(s, Split), "with_saved_models refuses a kd teacher on data-set splits"
        return Split(s.x, s.y, {**s.aux, task: predict(s.x)})

    tasks = {**data.tasks, task: TaskInfo(task, "probs", data.n_classes, "the teacher's softened predictions")}
    return dataclasses.replace(data, train=split(data.train), val=split(data.val), test=split(data.test), tasks=tasks)
