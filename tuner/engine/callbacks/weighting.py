"""Learned loss weighting: the reference arms a searched λ set is compared with in a confirmation.

Each method is a ``TrialCallback`` that replaces the loss the training loop backpropagates
(``TrainStep.loss``) by ``Σ_t w_t · L_t`` over every task, main included, as the methods are published:

* ``uncertainty`` (Kendall, Gal & Cipolla 2018): a learned log-variance ``s_t`` per task,
  ``L = Σ_t ½·exp(−s_t)·L_t + ½·s_t``; ``s`` starts at 0.
* ``gradnorm`` (Chen et al. 2018): weights ``w_t`` (start 1, kept summing to the number of tasks) are moved so
  that each task's gradient norm on the last shared layer, ``G_t = w_t·‖∇_W L_t‖``, approaches
  ``mean(G)·r_t^α``, where ``r_t`` is the task's loss ratio ``L_t/L_t(0)`` relative to the mean ratio.
* ``dwa`` (Dynamic Weight Average, Liu, Johns & Davison 2019): ``w_t = T_tasks·softmax(r_t/T)`` with
  ``r_t = L_t(e−1)/L_t(e−2)`` from the mean training losses of the two previous epochs; 1 for the first two.

The learned parameters (``s``, ``w``) get their own Adam at the training learning rate; their gradients are
written in closed form (∂/∂s_t = ½(1 − exp(−s_t)·L_t); ∂L_grad/∂w_t = sign(G_t − target_t)·‖∇_W L_t‖), so each
step uses the current weights for the model and then moves the weights, as in the papers' joint updates.
``summary()`` reports the weights per epoch and the effective λ_k = w_k / w_main.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import torch

from tuner.engine.callbacks.base import TrainStep, TrialCallback
from tuner.engine.losses import MAIN
from tuner.engine.user_model import UserModule
from tuner.results import EpochMetrics
from tuner.spec import ArmSpec


class LearnedWeighting(TrialCallback):
    """Base of the learned-weighting arms: keeps the weights per epoch and swaps the step's loss."""

    method: ClassVar[str]

    def __init__(self, tasks: list[str], lr: float):
        self.tasks = [MAIN, *[t for t in tasks if t != MAIN]]
        self.lr = lr
        self.history: list[dict[str, float]] = []

    @abstractmethod
    def weights(self) -> dict[str, float]:
        """The current weight of every task (main included)."""

    @abstractmethod
    def weigh(self, step: TrainStep) -> torch.Tensor:
        """The loss to backpropagate for this step (and move the learned weights)."""

    def on_step(self, step: TrainStep) -> None:
        step.loss = self.weigh(step)

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self.history.append(self.weights())

    def summary(self) -> dict[str, Any]:
        final = self.weights()
        main = final[MAIN] or 1.0
        return {"method": self.method, "weights_by_epoch": self.history, "final_weights": final,
                "effective_lambdas": {t: w / main for t, w in final.items() if t != MAIN}}

    def _weighted(self, step: TrainStep, weights: torch.Tensor) -> torch.Tensor:
        terms = step.losses.terms
        # A copy: the learned weights are then moved in place, which must not touch this step's graph.
        return sum((w * terms[t] for w, t in zip(weights.detach().clone(), self.tasks, strict=True)),
                   torch.zeros((), device=terms[MAIN].device))


class _LearnedParameter(LearnedWeighting):
    """A weighting with one learned value per task (``param``), moved by its own Adam with a closed-form gradient."""

    def __init__(self, tasks: list[str], lr: float, initial: float):
        super().__init__(tasks, lr)
        self.param = torch.full((len(self.tasks),), initial, requires_grad=True)
        self.opt = torch.optim.Adam([self.param], lr=self.lr)

    def _on(self, device: torch.device) -> torch.Tensor:
        """``param`` on the model's device (moved once, with a fresh optimizer, before the first step)."""
        if self.param.device != device:
            self.param = self.param.detach().to(device).requires_grad_(True)
            self.opt = torch.optim.Adam([self.param], lr=self.lr)
        return self.param

    def _move(self, grad: torch.Tensor) -> None:
        self.param.grad = grad
        self.opt.step()


class UncertaintyWeighting(_LearnedParameter):
    """Homoscedastic-uncertainty weighting (Kendall et al. 2018); ``param`` holds the log-variances ``s``."""

    method = "uncertainty"

    def __init__(self, tasks: list[str], lr: float):
        super().__init__(tasks, lr, initial=0.0)

    def weights(self) -> dict[str, float]:
        return {t: 0.5 * math.exp(-float(s)) for t, s in zip(self.tasks, self.param.detach(), strict=True)}

    def weigh(self, step: TrainStep) -> torch.Tensor:
        log_vars = self._on(step.losses.terms[MAIN].device)
        losses = torch.stack([step.losses.terms[t].detach() for t in self.tasks])
        precision = torch.exp(-log_vars.detach())
        loss = self._weighted(step, 0.5 * precision)
        self._move(0.5 * (1.0 - precision * losses))
        return loss


class GradNorm(_LearnedParameter):
    """GradNorm (Chen et al. 2018) on the last shared layer (the trunk's last weight matrix); ``param`` holds w."""

    method = "gradnorm"

    def __init__(self, tasks: list[str], lr: float, alpha: float = 1.5):
        super().__init__(tasks, lr, initial=1.0)
        self.alpha = alpha
        self.initial: torch.Tensor | None = None

    def weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in zip(self.tasks, self.param.detach(), strict=True)}

    @staticmethod
    def last_shared_layer(step: TrainStep) -> torch.Tensor:
        model = step.model
        shared = model.shared_parameters() if isinstance(model, UserModule) else model.trunk.parameters()
        weights = [p for p in shared if p.requires_grad and p.ndim >= 2]
        if not weights:
            raise ValueError("GradNorm needs a weight matrix in the shared trunk; this model's trunk has none")
        return weights[-1]

    def weigh(self, step: TrainStep) -> torch.Tensor:
        terms = step.losses.terms
        device = terms[MAIN].device
        w = self._on(device)
        layer = self.last_shared_layer(step)
        norms = []
        for t in self.tasks:
            (g,) = torch.autograd.grad(terms[t], [layer], retain_graph=True, allow_unused=True)
            norms.append(torch.zeros((), device=device) if g is None else g.detach().norm())
        grad_norms = torch.stack(norms)
        losses = torch.stack([terms[t].detach() for t in self.tasks])
        if self.initial is None:
            self.initial = losses.clamp_min(1e-12)
        loss = self._weighted(step, w)
        with torch.no_grad():
            ratios = losses / self.initial
            rate = ratios / ratios.mean().clamp_min(1e-12)
            g = w * grad_norms
            target = g.mean() * rate**self.alpha
        self._move(torch.sign(g - target) * grad_norms)
        with torch.no_grad():  # renormalise: Σ w = number of tasks, no weight below a floor
            w.clamp_(min=1e-3)
            w.mul_(len(self.tasks) / w.sum())
        return loss


class DynamicWeightAverage(LearnedWeighting):
    """DWA (Liu et al. 2019): weights from the rate each task's training loss fell over the last two epochs."""

    method = "dwa"

    def __init__(self, tasks: list[str], lr: float, temperature: float = 2.0):
        super().__init__(tasks, lr)
        self.temperature = temperature
        self.epoch_losses: list[dict[str, float]] = []
        self._w = torch.ones(len(self.tasks))

    def weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in zip(self.tasks, self._w, strict=True)}

    def weigh(self, step: TrainStep) -> torch.Tensor:
        return self._weighted(step, self._w.to(step.losses.terms[MAIN].device))

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        super().on_epoch_end(metrics)  # the weights this epoch trained with
        self.epoch_losses.append({t: metrics.train_loss[t] for t in self.tasks})
        if len(self.epoch_losses) >= 2:
            last, before = self.epoch_losses[-1], self.epoch_losses[-2]
            rates = torch.tensor([last[t] / max(before[t], 1e-12) for t in self.tasks])
            self._w = len(self.tasks) * torch.softmax(rates / self.temperature, dim=0)


def make_weighting(arm: ArmSpec, tasks: list[str], lr: float) -> LearnedWeighting:
    """The callback of a reference arm, for a study whose aux tasks are ``tasks``."""
    if arm.name == "uncertainty":
        return UncertaintyWeighting(tasks, lr)
    if arm.name == "gradnorm":
        return GradNorm(tasks, lr, alpha=arm.alpha)
    if arm.name == "dwa":
        return DynamicWeightAverage(tasks, lr, temperature=arm.temperature)
    raise ValueError(f"unknown weighting {arm.name!r}; allowed: uncertainty, gradnorm, dwa")
