"""A saved model as the new model sees it: its tensors, its rebuilt trunk, and a new model started from it.

The prepared study builds every new model through these (``PreparedStudy.new_model``); storing and loading
saved models, and what each mode and a kd teacher mean, are ``tuner.engine.transfer``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel, default_trunk
from tuner.spec import StudySpec
from tuner.workloads import make_workload


@dataclass(frozen=True)
class SavedModel:
    """A saved model loaded from the store: its reference, its meta document and its tensors (on the CPU)."""

    ref: str
    meta: dict[str, Any]
    state: dict[str, torch.Tensor]

    def part(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors under ``prefix`` (``"trunk."``), with the prefix cut off."""
        return {k[len(prefix):]: v for k, v in self.state.items() if k.startswith(prefix)}


def rebuild_trunk(meta: dict[str, Any]) -> nn.Module:
    """A fresh trunk of the saved model's architecture (its workload's own trunk, or the default one)."""
    arch = meta["architecture"]
    input_shape, hidden = tuple(int(d) for d in meta["input_shape"]), int(arch["hidden"])
    built = make_workload(str(arch["workload"]), dict(arch["workload_params"])).build_trunk(input_shape, hidden)
    return built[0] if built is not None else default_trunk(input_shape, hidden)


def start_trunk(model: MultiTaskModel, saved: SavedModel, mode: str, lr_factor: float) -> MultiTaskModel:
    """Copy the saved trunk's weights into ``model``'s trunk and set it up for ``mode`` (``tuner.engine.transfer``)."""
    model.trunk.load_state_dict(saved.part("trunk."))
    if mode == "freeze":
        for p in model.trunk.parameters():
            p.requires_grad_(False)
        model.trunk_frozen = True
        model.trunk.eval()
    elif mode == "finetune_lower_lr":
        model.trunk_lr_scale = lr_factor
    elif mode != "finetune":
        raise ValueError(f"unknown trunk mode {mode!r}")
    return model


def tie_kd_heads(model: MultiTaskModel, spec: StudySpec) -> MultiTaskModel:
    """A kd task with a teacher reads the student's main-head logits: its head is the main head."""
    for task in spec.aux_tasks:
        if task.teacher is not None:
            model.heads[task.name] = model.heads[MAIN]
    return model
