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


def gaussian_mmd(source: torch.Tensor, target: torch.Tensor,
                 bandwidths: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0)) -> torch.Tensor:
    """Squared maximum mean discrepancy between two feature batches (biased estimate, Gretton et al. 2012).

    Features are L2-normalised first and the kernel is a sum of Gaussians ``exp(-d² / 2σ²)`` over ``bandwidths``
    σ²: on the unit sphere the loss cannot be lowered by shrinking every feature towards zero (which, with a
    median-distance bandwidth, dead ReLUs do), only by aligning the two domains.
    """
    pooled = F.normalize(torch.cat([source, target]).flatten(1), dim=1)
    d2 = torch.cdist(pooled, pooled).pow(2)
    kernel = torch.stack([torch.exp(-d2 / (2 * s)) for s in bandwidths]).sum(0)
    n = len(source)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


def mmd_pair(pair: torch.Tensor) -> torch.Tensor:
    """``gaussian_mmd`` of a ``[source; target]`` stack of two equally large feature batches
    (``tuner.engine.domain``)."""
    n = len(pair) // 2
    return gaussian_mmd(pair[:n], pair[n:])


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
    if loss == "mmd":  # the target is a placeholder: the output stacks source and target-domain features
        return mmd_pair(output)
    raise ValueError(f"unknown loss {loss!r}; allowed: ce, bce, mse, kd, mmd")


def compute_losses(
    outputs: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    aux_targets: Mapping[str, torch.Tensor],
    task_losses: Mapping[str, str],
    lambdas: Mapping[str, float],
    temperatures: Mapping[str, float] | None = None,
) -> LossBreakdown:
    """``L = L_main + Σ_k λ_k · L_k`` with the main task's cross-entropy as ``L_main``."""
    terms = task_terms(outputs, y, aux_targets, task_losses, temperatures)
    return LossBreakdown(total=weighted_total(terms, lambdas), terms=terms, lambdas=dict(lambdas))


def task_terms(
    outputs: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    aux_targets: Mapping[str, torch.Tensor],
    task_losses: Mapping[str, str],
    temperatures: Mapping[str, float] | None = None,
) -> dict[str, torch.Tensor]:
    """The unweighted loss of every task: ``main`` (cross-entropy) first, then the aux tasks in order."""
    terms = {MAIN: cross_entropy(outputs[MAIN], y)}
    for name, loss in task_losses.items():
        temp = (temperatures or {}).get(name, 2.0)
        terms[name] = task_loss(loss, outputs[name], aux_targets[name], temp)
    return terms


def weighted_total(terms: Mapping[str, torch.Tensor], lambdas: Mapping[str, float | torch.Tensor]) -> torch.Tensor:
    """``terms[main] + Σ_k λ_k · terms[k]``, summed in the order of ``terms``.

    A λ may be a tensor: the population path (``tuner.engine.population.run``) passes one λ per member under ``vmap``,
    where a Python ``float`` of it is impossible. A float λ is applied as ``float(λ) · term``, which on a float32
    term computes exactly what a float32 tensor λ does, so both paths give the same total.
    """
    total = terms[MAIN]
    for name, term in terms.items():
        if name != MAIN:
            lam = lambdas[name]
            total = total + (lam if isinstance(lam, torch.Tensor) else float(lam)) * term
    return total


#: The losses ``member_task_terms`` computes for K members at once (``mmd`` compares two feature batches per
#: member: only ``vmap`` runs it, see ``tuner.engine.population.stack``).
MEMBER_LOSSES = ("ce", "bce", "mse", "kd")


def member_task_terms(
    outputs: Mapping[str, torch.Tensor],
    y: torch.Tensor,
    aux_targets: Mapping[str, torch.Tensor],
    task_losses: Mapping[str, str],
    temperatures: Mapping[str, float] | None = None,
    shared: bool = False,
) -> dict[str, torch.Tensor]:
    """``task_terms`` of K members at once, each term of shape ``(K,)``: member k's term is ``task_terms`` of its
    outputs ``outputs[task][k]`` (``(K, B, ...)``, member-major) against its targets ``y[k]``, ``aux_targets[t][k]``
    (``(K, B, ...)``), or with ``shared`` against one batch of targets ``(B, ...)`` for every member.

    The same formulas as ``task_loss``, each reduced per member (unreduced loss, then the mean, or for ``kd`` the
    sum over the member's batch / its size): a few batched kernels instead of ``task_terms`` under ``vmap``, whose
    per-call machinery costs a population ~1 ms a step. The float32 sums may run in another order than the single
    model's reduction (last-bit differences; ``tests/tuner/test_losses_model.py`` holds the two to 1e-6).

    Raises:
        ValueError: a task's loss is not in ``MEMBER_LOSSES``.
    """
    logits = outputs[MAIN]
    k = logits.shape[0]

    def target(t: torch.Tensor) -> torch.Tensor:
        return t.expand(k, *t.shape) if shared else t

    labels = target(y).reshape(-1).long()
    terms = {MAIN: F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels, reduction="none").view(k, -1)
             .mean(1)}
    for name, loss in task_losses.items():
        out, aim = outputs[name], target(aux_targets[name])
        if loss == "ce":
            unreduced = F.cross_entropy(out.reshape(-1, out.shape[-1]), aim.reshape(-1).long(), reduction="none")
        elif loss == "bce":
            unreduced = F.binary_cross_entropy_with_logits(out.reshape(aim.shape), aim.float(), reduction="none")
        elif loss == "mse":
            unreduced = F.mse_loss(out.reshape(aim.shape), aim.float(), reduction="none")
        elif loss == "kd":
            temp = (temperatures or {}).get(name, 2.0)
            log_student = F.log_softmax(out / temp, dim=-1)
            kl = F.kl_div(log_student, aim.float(), reduction="none").reshape(k, -1).sum(1)
            terms[name] = kl / out.shape[1] * temp**2  # "batchmean": the sum over a member's batch / its size
            continue
        else:
            raise ValueError(f"loss {loss!r} has no batched form here; allowed: {', '.join(MEMBER_LOSSES)}")
        terms[name] = unreduced.reshape(k, -1).mean(1)
    return terms
