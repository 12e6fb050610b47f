"""The optimisers a trial trains with: one place that turns ``training.optimizer`` into a torch optimiser.

The training loop, the sanity gate and the population's stacked optimisers (``tuner.engine.population.optim``,
which copy their hyperparameters from it) all build from here, so the paths cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import torch

from tuner.spec import TrainingSpec


def make_optimizer(params: Any, training: TrainingSpec, lr: float) -> torch.optim.Optimizer:
    """The optimiser ``training`` names (``sgd`` with momentum 0.9, ``adamw``, else ``adam``) over ``params``."""
    if training.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=training.weight_decay)
    if training.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=training.weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=training.weight_decay)
