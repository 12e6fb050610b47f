"""Per-task losses and the ``LossBreakdown`` that carries the weighted total and each task's term.

Every consumer (training loop, sanity gate, metrics, later the affinity probe) reads the breakdown, so the
weighting ``L = L_main + Σ_k λ_k · L_k`` is written in exactly one place: ``compute_losses``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAIN = "main"


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, target.long())


def soft_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy against soft targets in [0, 1] (e.g. per-class attribute scores)."""
    return F.binary_cross_entropy_with_logits(logits.reshape(target.shape), target.float())


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred.reshape(target.shape), target.float())


def kd_kl(logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """KL(teacher ‖ student) on temperature-softened distributions, scaled by T² (Hinton et al. 2015).

    ``teacher_probs`` are the teacher's probabilities already softened at ``temperature``.
    """
    log_student = F.log_softmax(logits / temperature, dim=-1)
    return F.kl_div(log_student, teacher_probs.float(), reduction="batchmean") * temperature**2


@dataclass
class LossBreakdown:
    """The loss of one step: ``total`` keeps its graph; ``terms`` are the unweighted per-task losses."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    lambdas: dict[str, float]

    def detached(self) -> dict[str, float]:
        """Per-task unweighted losses as floats, plus ``total``."""
        out = {k: float(v.detach()) for k, v in self.terms.items()}
        out["total"] = float(self.total.detach())
        return out


def task_loss(loss: str, output: torch.Tensor, target: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    if loss == "ce":
        return cross_entropy(output, target)
    if loss == "bce":
        return soft_bce(output, target)
    if loss == "mse":
        return mse(output, target)
    if loss == "kd":
        return kd_kl(output, target, temperature)
    raise ValueError(f"unknown loss {loss!r}; allowed: ce, bce, mse, kd")


def compute_losses(
    outputs: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    aux_targets: Mapping[str, torch.Tensor],
    task_losses: Mapping[str, str],
    lambdas: Mapping[str, float],
    temperatures: Mapping[str, float] | None = None,
) -> LossBreakdown:
    """``L = L_main + Σ_k λ_k · L_k`` with the main task's cross-entropy as ``L_main``."""
    terms = {MAIN: cross_entropy(outputs[MAIN], y)}
    total = terms[MAIN]
    for name, loss in task_losses.items():
        temp = (temperatures or {}).get(name, 2.0)
        terms[name] = task_loss(loss, outputs[name], aux_targets[name], temp)
        total = total + float(lambdas[name]) * terms[name]
    return LossBreakdown(total=total, terms=terms, lambdas=dict(lambdas))
