"""Task affinity measured during training: the lookahead probe of TAG (Fifty et al. 2021).

Every ``affinity.every`` steps, on the step's own minibatch, for every task i (main and each aux task):

    θ'_s = θ_s − η ∇_{θ_s} L_i          (one plain gradient step on task i alone, shared trunk only)
    Z_{i→j} = 1 − L_j(θ'_s, heads) / L_j(θ_s, heads)

``Z_{k→main} > 0``: a step on aux task k alone lowers the main task's loss (k helps it); ``< 0``: it raises it.
η is the training learning rate (``affinity.lr`` overrides it), as in TAG. With Adam that plain step is short,
so Z is close to its first-order term η·∇L_i·∇L_j / L_j and noisy on small minibatches: it is an average over
many probes (and trials), to be read as a ranking and a sign, not as a precise figure. (A step preconditioned
by Adam's second moment was tried and rejected: that moment comes from the weighted *total* gradient, so a
task with a small λ got huge, meaningless steps.)

The probe only reads: gradients come from ``torch.autograd.grad`` (no ``.grad`` is touched), the lookahead runs
on copies through ``torch.func.functional_call`` (buffers copied too, so batch-norm statistics stay put) under a
forked RNG, so a trial trains exactly the same with the probe on or off. Its cost per probed step is one extra
backward and forward pass per task (``bench/confirm_cost.py``: about 6 % of a trial at the default every 25).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch
from torch.func import functional_call

from tuner.engine.callbacks.base import TrainStep, TrialCallback
from tuner.engine.losses import MAIN, compute_losses
from tuner.engine.user_model import UserModule

if TYPE_CHECKING:
    from tuner.engine.prepared import PreparedStudy
    from tuner.results import TrialResult

logger = logging.getLogger(__name__)


class AffinityProbe(TrialCallback):
    """Accumulates ``Z_{i→j}`` over the probed steps of one trial; ``summary()`` gives the averages."""

    def __init__(self, task_losses: dict[str, str], temperatures: dict[str, float], every: int, lr: float):
        if every < 1:
            raise ValueError(f"every must be ≥ 1, got {every}")
        self.task_losses, self.temperatures, self.every, self.lr = task_losses, temperatures, every, lr
        self.tasks = [MAIN, *task_losses]
        # A domain (mmd) task's loss needs a target-domain batch the probe must not draw (it would change the
        # trial's draws): such a task is a source of the matrix, never a target.
        self._measured = {t: loss for t, loss in task_losses.items() if loss != "mmd"}
        self.targets = [MAIN, *self._measured]
        self._sums = {src: dict.fromkeys(self.tasks, 0.0) for src in self.tasks}
        self._counts = {src: dict.fromkeys(self.tasks, 0) for src in self.tasks}
        self.probes = 0
        #: Wall time spent probing, so a trial can say what the probe cost it.
        self.seconds = 0.0

    def on_step(self, step: TrainStep) -> None:
        if step.number % self.every == 0:
            self.probe(step)

    def on_test_end(self, result: TrialResult) -> None:
        result.affinity = self.summary()

    def probe(self, step: TrainStep) -> dict[str, dict[str, float]]:
        """Measure ``Z_{i→j}`` on this step's minibatch (and add it to the averages); returns this step's."""
        start = time.perf_counter()
        model, batch, terms = step.model, step.batch, step.losses.terms
        user = isinstance(model, UserModule)  # a workload's own module: its shared_parameters(), moved in place
        shared = {id(p) for p in model.shared_parameters()} if isinstance(model, UserModule) else set()
        named = ([(n, p) for n, p in model.named_parameters() if id(p) in shared] if user
                 else [(n, p) for n, p in model.trunk.named_parameters() if p.requires_grad])
        if not named:  # a frozen trunk (tuner.engine.transfer): no shared step whose effect could be measured
            return {}
        params = [p for _, p in named]
        before = {t: float(terms[t].detach()) for t in self.targets}
        grads = {t: torch.autograd.grad(terms[t], params, retain_graph=True, allow_unused=True) for t in self.tasks}
        devices = [batch.x.device] if batch.x.device.type == "cuda" else []
        out: dict[str, dict[str, float]] = {}
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            buffers = {n: b.clone() for n, b in (model if user else model.trunk).named_buffers()}
            for src in self.tasks:
                moved = {n: p.detach() if g is None else p.detach() - self.lr * g
                         for (n, p), g in zip(named, grads[src], strict=True)}
                if user:  # the whole forward, its buffers (BatchNorm statistics) copies that the probe may move
                    outputs = functional_call(model, {**moved, **buffers}, (batch.x,), strict=False)
                else:
                    feats = functional_call(model.trunk, {**moved, **buffers}, (batch.x,))
                    outputs = {t: model.heads[t](model.head_input(t, feats)) for t in self.targets}
                after = compute_losses(outputs, batch.y, batch.aux, self._measured, step.losses.lambdas,
                                       self.temperatures).terms
                out[src] = {}
                for dst in self.targets:
                    if before[dst] > 0:
                        z = 1.0 - float(after[dst]) / before[dst]
                        out[src][dst] = z
                        self._sums[src][dst] += z
                        self._counts[src][dst] += 1
        self.probes += 1
        self.seconds += time.perf_counter() - start
        return out

    def state_dict(self) -> dict[str, Any]:
        """The sums so far (a trial's checkpoint keeps them, ``tuner.engine.checkpoint``)."""
        return {"sums": self._sums, "counts": self._counts, "probes": self.probes, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums, self._counts = state["sums"], state["counts"]
        self.probes, self.seconds = int(state["probes"]), float(state["seconds"])

    def matrix(self) -> dict[str, dict[str, float | None]]:
        """Mean ``Z_{src→dst}`` over the probed steps (``None`` where never measured)."""
        return {src: {dst: (self._sums[src][dst] / n if (n := self._counts[src][dst]) else None)
                      for dst in self.tasks} for src in self.tasks}

    def summary(self) -> dict[str, Any]:
        """What a trial stores: the matrix, each aux task's affinity to the main task, and how it was measured."""
        matrix = self.matrix()
        return {"every": self.every, "lr": self.lr, "probes": self.probes, "seconds": self.seconds,
                "tasks": self.tasks, "matrix": matrix,
                "to_main": {t: matrix[t][MAIN] for t in self.tasks if t != MAIN}}


def affinity_probe(prep: PreparedStudy) -> AffinityProbe | None:
    """The probe a trial of ``prep.spec`` runs, or None (``affinity.every: 0``, or no aux task)."""
    spec = prep.spec
    if spec.affinity.every == 0 or not spec.aux_tasks:
        return None
    return AffinityProbe(prep.task_losses, prep.temperatures, spec.affinity.every,
                         spec.affinity.lr or spec.training.lr)
