"""How a trial's optimiser steps: the optimiser and its lr schedule, precision, gradient clipping, accumulation.

``StepControls`` is what the loop calls around each minibatch (``autocast``, ``backward``) and at each epoch's end
(``end_epoch``, which steps the schedule). The optimiser is the workload's own when it implements
``configure_optimizers`` (an optimiser, or ``(optimiser, lr_scheduler)``), else ``training.optimizer`` with the
built-in ``training.scheduler``:

- ``cosine``: linear warm-up from lr/25 over ``warmup_epochs``, then a cosine from lr down to 0 (an epoch
  after the last);
- ``step``: the warm-up, then lr × gamma every ``step_size`` epochs;
- ``onecycle``: one cycle (Smith 2018) per epoch: up from lr/25 to lr over the warm-up (30% of the epochs when
  ``warmup_epochs`` is 0), then a cosine down to lr/10⁴.

``precision`` ``bf16`` autocasts forward passes and losses to bfloat16 (CPU or GPU); ``fp16`` to float16 with a
``GradScaler``, on CUDA only (refused elsewhere: ``check_precision``). With ``accumulate`` k, each minibatch's loss
is divided by k and the optimiser steps every k minibatches (and once more at an epoch's end on what is left), so
k batches of b train like one batch of k·b; ``grad_clip`` clips the total gradient norm before each step.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn

from tuner.engine.optim import make_optimizer
from tuner.engine.user_model import FIELD
from tuner.spec import SchedulerSpec, TrainingSpec
from tuner.workloads import Workload, WorkloadError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Where the built-in warm-up starts (a fraction of lr), and where onecycle ends.
WARMUP_START, ONECYCLE_END = 1 / 25, 1e-4


def check_precision(training: TrainingSpec, device: torch.device) -> None:
    """Refuse ``fp16`` off CUDA (no grad scaler there), naming the field and the fix."""
    if training.precision == "fp16" and device.type != "cuda":
        raise WorkloadError("training.precision", f"fp16 needs a CUDA device (this study trains on {device}); "
                                                  "use bf16, which runs on the CPU too, or fp32")


def autocast(training: TrainingSpec, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The forward passes' precision for ``training.precision`` on ``device`` (a no-op at fp32)."""
    dtype = _DTYPES.get(training.precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def lr_factor(scheduler: SchedulerSpec, epochs: int, epoch: int) -> float:
    """The built-in schedule's lr multiplier in ``epoch`` (0-based) of ``epochs``."""
    warmup = scheduler.warmup_epochs
    if scheduler.name == "onecycle" and warmup == 0:
        warmup = max(1, round(0.3 * epochs))
    if scheduler.name == "none" and warmup == 0:
        return 1.0
    if epoch < warmup:
        return WARMUP_START + (1 - WARMUP_START) * epoch / warmup
    after, rest = epoch - warmup, max(1, epochs - warmup)
    if scheduler.name == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(after, rest) / rest))
    if scheduler.name == "onecycle":
        return ONECYCLE_END + (1 - ONECYCLE_END) * 0.5 * (1 + math.cos(math.pi * min(after, rest) / rest))
    if scheduler.name == "step":
        return float(scheduler.gamma ** (after // scheduler.step_size))
    return 1.0


def make_optimisers(workload: Workload, model: nn.Module, training: TrainingSpec,
                    lr: float) -> tuple[torch.optim.Optimizer, Any]:
    """``(optimiser, lr scheduler or None)``: the workload's ``configure_optimizers``, else the spec's.

    Raises:
        WorkloadError: when ``configure_optimizers`` returns something else than an optimiser or a pair.
    """
    net = getattr(model, "net", model)
    given = workload.configure_optimizers(net, lr, training.weight_decay) if workload.brings_optimizer() else None
    if given is None:
        opt = make_optimizer(model.param_groups(lr), training, lr)  # type: ignore[operator]
        if training.scheduler.name == "none" and training.scheduler.warmup_epochs == 0:
            return opt, None
        scheduler, epochs = training.scheduler, training.epochs
        # A function (not an object): LambdaLR's state is then its epoch count only, loadable with weights_only.
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: lr_factor(scheduler, epochs, epoch))
    opt, sched = given if isinstance(given, tuple) and len(given) == 2 else (given, None)
    if not isinstance(opt, torch.optim.Optimizer) or (sched is not None and not callable(getattr(sched, "step", None))):
        raise WorkloadError(f"{FIELD}.configure_optimizers", "must return a torch optimiser or (optimiser, "
                                                             f"lr_scheduler); got {type(given).__name__}")
    return opt, sched


class StepControls:
    """One trial's optimiser, schedule, scaler, clipping and accumulation (see the module docstring)."""

    def __init__(self, workload: Workload, model: nn.Module, training: TrainingSpec, device: torch.device):
        self.opt, self.scheduler = make_optimisers(workload, model, training, training.lr)
        self.training, self.device = training, device
        self.scaler = torch.amp.GradScaler("cuda") if training.precision == "fp16" else None
        self.accumulate, self.grad_clip = training.accumulate, training.grad_clip
        self.pending = 0

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's precision (a no-op at fp32)."""
        return autocast(self.training, self.device)

    def backward(self, loss: torch.Tensor) -> None:
        """Add ``loss``'s gradient (divided by ``accumulate``); step once ``accumulate`` minibatches are in."""
        scaled = loss / self.accumulate if self.accumulate > 1 else loss
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        self.pending += 1
        if self.pending == self.accumulate:
            self.step()

    def step(self) -> None:
        """The optimiser step on the gradients gathered so far (none: nothing), clipped, then zeroed."""
        if self.pending == 0:
            return
        if self.scaler is not None:
            self.scaler.unscale_(self.opt)
        if self.grad_clip is not None:
            params = [p for group in self.opt.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.pending = 0

    def end_epoch(self) -> None:
        """Step on what is left of the epoch's accumulation, then the lr schedule (once per epoch)."""
        self.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
