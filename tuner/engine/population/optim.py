"""Adam, AdamW and SGD on stacked parameters: one call updates every member of a population at once.

A population (``tuner.engine.population.run``) keeps each parameter of its K members as one tensor of shape ``(K,
...)``.
The optimisers here apply torch.optim's own formulas (``_single_tensor_adam`` in ``torch/optim/adam.py``,
``_single_tensor_sgd`` in ``torch/optim/sgd.py``) to those tensors with torch's ``_foreach`` kernels (Adam and
AdamW with torch's fused kernel where this torch has one: the same formula in one pass). Every operation is
elementwise and the hyperparameters are the same for every member, so member k's update reads only
member k's slices: a member whose gradients are NaN ruins its own parameters and nobody else's.

The hyperparameters come from the very optimiser ``tuner.engine.optim.make_optimizer`` builds for a trial alone (its
``param_groups``), so the batched path and the single-trial path cannot drift apart.
"""

from __future__ import annotations

import abc
from typing import Any

import torch

from tuner.engine.optim import make_optimizer
from tuner.spec import TrainingSpec

Tensors = list[torch.Tensor] | tuple[torch.Tensor, ...]
#: Whether this torch has the fused Adam/AdamW kernels (CPU since torch 2.4).
_FUSED = hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_adamw_")


class StackedOptimizer(abc.ABC):
    """An optimiser over stacked parameters; it holds the state, the caller holds the parameters.

    ``step`` updates ``params`` in place from ``grads`` (same order every call); ``keep`` drops the state of
    members that left the population (rows not listed), after the caller dropped their parameters.
    """

    def __init__(self, group: dict[str, Any]):
        self.lr: float = float(group["lr"])
        self.weight_decay: float = float(group["weight_decay"])
        self.state: list[list[torch.Tensor]] = []  # one list per state slot, each one tensor per parameter

    @abc.abstractmethod
    def step(self, params: Tensors, grads: Tensors) -> None:
        """One update of every member; ``params`` are leaves (updated without autograd)."""

    def keep(self, rows: torch.Tensor) -> None:
        """Keep the state of the members at ``rows`` (a 1-D index), in that order."""
        self.state = [[t.index_select(0, rows) for t in slot] for slot in self.state]


class StackedAdam(StackedOptimizer):
    """Adam (L2 weight decay on the gradient) or, with ``decoupled``, AdamW (decay applied to the weights)."""

    def __init__(self, group: dict[str, Any], decoupled: bool):
        super().__init__(group)
        self.beta1, self.beta2 = (float(b) for b in group["betas"])
        self.eps = float(group["eps"])
        self.decoupled = decoupled
        self.steps = 0

    @torch.no_grad()
    def step(self, params: Tensors, grads: Tensors) -> None:
        if not self.state:
            self.state = [[torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
                          for _ in range(2)]
        self.steps += 1
        if _FUSED and all(p.is_contiguous() for p in params):
            self._fused_step(params, grads)
        else:
            self._foreach_step(params, grads)

    def _fused_step(self, params: Tensors, grads: Tensors) -> None:
        """torch's fused Adam kernel: one pass over each tensor instead of the seven ``_foreach`` passes (same
        formula; it reads dense memory, so the gradients are made contiguous first)."""
        exp_avg, exp_avg_sq = self.state
        steps = [torch.tensor(float(self.steps), device=p.device) for p in params]
        fused = torch._fused_adamw_ if self.decoupled else torch._fused_adam_
        fused(list(params), [g.contiguous() for g in grads], exp_avg, exp_avg_sq, [], steps, lr=self.lr,
              beta1=self.beta1, beta2=self.beta2, weight_decay=self.weight_decay, eps=self.eps, amsgrad=False,
              maximize=False)

    def _foreach_step(self, params: Tensors, grads: Tensors) -> None:
        exp_avg, exp_avg_sq = self.state
        if self.weight_decay:
            if self.decoupled:
                torch._foreach_mul_(params, 1 - self.lr * self.weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        torch._foreach_lerp_(exp_avg, grads, 1 - self.beta1)
        torch._foreach_mul_(exp_avg_sq, self.beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1 ** float(self.steps)
        bias_correction2 = 1 - self.beta2 ** float(self.steps)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, bias_correction2**0.5)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, exp_avg, denom, value=-(self.lr / bias_correction1))


class StackedSGD(StackedOptimizer):
    """SGD with (heavy-ball) momentum and L2 weight decay, as ``make_optimizer`` configures it."""

    def __init__(self, group: dict[str, Any]):
        super().__init__(group)
        self.momentum = float(group["momentum"])
        self.dampening = float(group["dampening"])

    @torch.no_grad()
    def step(self, params: Tensors, grads: Tensors) -> None:
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum:
            if not self.state:
                self.state = [[g.detach().clone() for g in grads]]
            else:
                torch._foreach_mul_(self.state[0], self.momentum)
                torch._foreach_add_(self.state[0], grads, alpha=1 - self.dampening)
            grads = self.state[0]
        torch._foreach_add_(params, grads, alpha=-self.lr)


def make_stacked_optimizer(training: TrainingSpec, lr: float) -> StackedOptimizer:
    """The stacked counterpart of ``make_optimizer(params, training, lr)``, with the same hyperparameters.

    Raises:
        ValueError: the optimiser uses an option the stacked versions do not implement (amsgrad, nesterov, …).
    """
    reference = make_optimizer([torch.zeros(1, requires_grad=True)], training, lr)
    group = reference.param_groups[0]
    unsupported = [k for k in ("amsgrad", "nesterov", "maximize", "differentiable") if group.get(k)]
    if unsupported:
        raise ValueError(f"the population path does not implement {type(reference).__name__} with {unsupported}")
    if isinstance(reference, torch.optim.Adam):  # AdamW is Adam with decoupled_weight_decay=True
        return StackedAdam(group, decoupled=bool(group.get("decoupled_weight_decay", False)))
    if isinstance(reference, torch.optim.SGD):
        return StackedSGD(group)
    raise ValueError(f"the population path has no stacked version of {type(reference).__name__}")
