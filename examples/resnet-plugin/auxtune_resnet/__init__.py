"""An auxtune workload plugin that brings its own model and optimiser (see docs/workloads.md, "Your own model").

``ResNetImages`` reads the same image folder as the built-in ``images`` workload (it subclasses it: same params,
same splits, same aux tasks), and trains its own network: a small ResNet-like CNN (residual blocks with BatchNorm)
whose heads are its own (an MLP head for the main task, a linear head per aux task), with SGD + Nesterov momentum
and a cosine schedule. ``shared_parameters()`` names the residual trunk, so the affinity probe and GradNorm work.
Torch is imported inside the methods only: ``describe_tasks`` (run by the API at submission) needs none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from tuner.workloads import WorkloadData
from tuner.workloads.images import ImagesWorkload


def _resnet(channels: int, n_classes: int, task_dims: dict[str, int], width: int = 16) -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        """Two 3×3 convolutions with BatchNorm and a skip connection (a 1×1 projection when the shape changes)."""

        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
            self.skip = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.body(x) + self.skip(x))

    class SmallResNet(nn.Module):
        """stem → 2 residual stages → global average pool; a 2-layer MLP main head, one linear head per aux task."""

        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(
                nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                Block(width, width, 1), Block(width, 2 * width, 2),
                nn.AdaptiveAvgPool2d(1), nn.Flatten())
            features = 2 * width
            self.main_head = nn.Sequential(nn.Linear(features, features), nn.ReLU(), nn.Dropout(0.1),
                                           nn.Linear(features, n_classes))
            self.aux_heads = nn.ModuleDict({t: nn.Linear(features, d) for t, d in task_dims.items()})

        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            f = self.trunk(x)
            return {"main": self.main_head(f), **{t: head(f) for t, head in self.aux_heads.items()}}

        def shared_parameters(self) -> Any:
            return self.trunk.parameters()

    return SmallResNet()


class ResNetImages(ImagesWorkload):
    """The ``images`` workload's data with a small ResNet, its own heads, and SGD + cosine."""

    name: ClassVar[str] = "resnet-images"
    description: ClassVar[str] = "images with a small ResNet-like CNN (BatchNorm, custom heads, SGD + cosine)"

    def build_model(self, data: WorkloadData, aux_tasks: Sequence[str]) -> Any:
        return _resnet(data.input_shape[0], data.n_classes, {t: data.tasks[t].dim for t in aux_tasks})

    def configure_optimizers(self, model: Any, lr: float, weight_decay: float) -> Any:
        import torch

        # Epochs are not known here; a fixed cosine period of 20 epochs (it holds at its floor after).
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20, eta_min=lr * 0.01)
