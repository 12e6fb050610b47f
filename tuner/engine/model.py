"""Hard parameter sharing: one shared trunk, one head per task (main + auxiliaries)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tuner.engine.losses import MAIN
from tuner.workloads import TaskInfo


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → cuda when present, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def mlp_trunk(in_features: int, hidden: int, depth: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers)


def cnn_trunk(channels: int, hidden: int, size: int = 8) -> nn.Sequential:
    """A small CNN for small images (8×8 digits, the ``images`` workload's 16–256 px): two 3×3 convolutions, each
    of stride 2 while the image is larger than 16 px (so a 64×64 image is pooled from 16×16 maps, and 8–16 px
    images keep their full resolution), then an average pooling to 4×4 and a Linear layer of width ``hidden``."""
    strides = []
    for _ in range(2):
        strides.append(2 if size > 16 else 1)
        size = (size - 1) // strides[-1] + 1
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, stride=strides[0], padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=strides[1], padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(32 * 16, hidden), nn.ReLU(),
    )


def default_trunk(input_shape: tuple[int, ...], hidden: int) -> nn.Module:
    """MLP for flat/tabular input (one dim), CNN for image input (channels, height, width)."""
    if len(input_shape) == 3:
        return cnn_trunk(input_shape[0], hidden, max(input_shape[1:]))
    n = 1
    for d in input_shape:
        n *= d
    return mlp_trunk(n, hidden)


class MultiTaskModel(nn.Module):
    """``forward`` returns ``{"main": logits, <task>: output, ...}``; ``features`` is the trunk's output.

    A trunk started from a saved model (``tuner.engine.transfer``) may be frozen (``trunk_frozen``: it stays in eval
    mode
    and ``param_groups`` leaves it out) or train at a lower learning rate (``trunk_lr_scale``).
    """

    trunk_frozen: bool = False
    trunk_lr_scale: float = 1.0

    def __init__(self, trunk: nn.Module, feature_dim: int, n_classes: int, aux_tasks: dict[str, TaskInfo]):
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleDict({MAIN: nn.Linear(feature_dim, n_classes)})
        for name, info in aux_tasks.items():
            self.heads[name] = nn.Linear(feature_dim, info.dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def head_input(self, name: str, features: torch.Tensor) -> torch.Tensor:
        """What head ``name`` sees of the trunk's features (a hook for custom wiring)."""
        return features

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(x)
        return {name: head(self.head_input(name, feats)) for name, head in self.heads.items()}

    def train(self, mode: bool = True) -> MultiTaskModel:
        super().train(mode)
        if self.trunk_frozen:  # batch-norm statistics and dropout of a frozen trunk stay as they were saved
            self.trunk.train(False)
        return self

    def param_groups(self, lr: float) -> Any:
        """What the optimiser trains: every parameter at ``lr``, or, with a frozen or slower trunk, the heads at
        ``lr`` and the trunk (unless frozen) at ``lr × trunk_lr_scale``."""
        if not self.trunk_frozen and self.trunk_lr_scale == 1.0:
            return self.parameters()
        in_trunk = {id(p) for p in self.trunk.parameters()}
        groups = [{"params": [p for p in self.parameters() if id(p) not in in_trunk and p.requires_grad], "lr": lr}]
        trunk = [p for p in self.trunk.parameters() if p.requires_grad]
        if trunk and not self.trunk_frozen:
            groups.append({"params": trunk, "lr": lr * self.trunk_lr_scale})
        return groups


def build_model(
    input_shape: tuple[int, ...],
    n_classes: int,
    aux_tasks: dict[str, TaskInfo],
    hidden: int,
    trunk: tuple[nn.Module, int] | None = None,
) -> MultiTaskModel:
    """The default model, or one on a workload-given ``(trunk, feature_dim)``."""
    if trunk is None:
        return MultiTaskModel(default_trunk(input_shape, hidden), hidden, n_classes, aux_tasks)
    module, dim = trunk
    return MultiTaskModel(module, dim, n_classes, aux_tasks)
