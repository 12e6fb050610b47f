"""Domain adaptation: the MMD aux task and target-domain metrics (a generated domain: ``tuner.workloads.shifts``).

A workload with a target domain (``WorkloadData.target``) offers an aux task of kind ``domain`` whose loss is
``mmd``: the Gaussian-kernel maximum mean discrepancy between the trunk's features of a source batch and of an
equally large batch of unlabelled target-domain inputs (``tuner.engine.losses.gaussian_mmd``). λ_mmd is searched like
any λ. ``DomainModel`` wires it: the task's head is the identity, and what it sees (``head_input``) is the source
features stacked on the target features, drawn from the target pool (training: a fresh random draw each step,
seeded by the trial's seed; evaluation: the labelled target validation inputs, in order). The pool lives in
non-persistent buffers: a saved model holds no data, and the population path, which refuses buffers, runs such
trials one at a time.

When the target domain has labels for validation, every epoch also measures the main task there
(``EpochMetrics.target``), so ``objective: {metric: target_val_accuracy}`` can pick the λ that adapts best.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel

if TYPE_CHECKING:
    from tuner.workloads import Split, TargetDomain, WorkloadData

#: Kind of the aux task a workload offers when it has a target domain; its one loss is ``mmd``.
DOMAIN_KIND = "domain"


class DomainModel(MultiTaskModel):
    """A ``MultiTaskModel`` whose domain tasks see ``[source features; target features]`` (see the module doc).

    Args:
        base: the model to wire (its trunk and heads are taken over; domain tasks' heads become identities).
        domain_tasks: names of the aux tasks with the ``mmd`` loss.
        pool: unlabelled target-domain inputs drawn from while training.
        eval_pool: target-domain inputs used in evaluation (the labelled validation inputs, or ``pool``).
        seed: the trial's seed; training draws are a function of it and the step.
    """

    def __init__(self, base: MultiTaskModel, domain_tasks: Sequence[str], pool: torch.Tensor,
                 eval_pool: torch.Tensor, seed: int):
        nn.Module.__init__(self)
        self.trunk = base.trunk
        self.heads = base.heads
        self.domain_tasks = tuple(domain_tasks)
        for name in self.domain_tasks:
            self.heads[name] = nn.Identity()
        self.target_pool: torch.Tensor
        self.target_eval_pool: torch.Tensor
        self.register_buffer("target_pool", pool, persistent=False)
        self.register_buffer("target_eval_pool", eval_pool, persistent=False)
        self.seed, self.draws = seed, 0

    def target_batch(self, n: int) -> torch.Tensor:
        """``n`` target inputs: a seeded random draw while training, the eval pool in order (cycled) otherwise."""
        if not self.training:
            pool = self.target_eval_pool
            return pool[torch.arange(n, device=pool.device) % len(pool)]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.draws)
        self.draws += 1
        index = torch.randint(len(self.target_pool), (n,), generator=g).to(self.target_pool.device)
        return self.target_pool[index]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.features(x)
        out = {name: head(feats) for name, head in self.heads.items() if name not in self.domain_tasks}
        if self.domain_tasks:
            pair = torch.cat([feats, self.features(self.target_batch(len(x)))])  # one target batch per step
            out.update({name: self.heads[name](pair) for name in self.domain_tasks})
        return out


def with_target_domain(model: MultiTaskModel, data: WorkloadData, task_losses: dict[str, str],
                       seed: int) -> MultiTaskModel:
    """``model`` wired for its ``mmd`` tasks (a ``DomainModel``), or ``model`` itself when there are none."""
    domain_tasks = [name for name, loss in task_losses.items() if loss == "mmd"]
    if not domain_tasks or data.target is None:
        return model
    target = data.target
    eval_pool = target.val.x if target.val is not None else target.train.x
    return DomainModel(model, domain_tasks, target.train.x, eval_pool, seed)


@torch.no_grad()
def target_metrics(model: MultiTaskModel, target: TargetDomain | None,
                   split: Literal["val", "test"]) -> dict[str, float]:
    """The main task's ``accuracy`` and cross-entropy ``loss`` on a labelled target split; {} without one."""
    part = getattr(target, split) if target is not None else None
    if part is None or len(part) == 0:
        return {}
    return _main_task_metrics(model, part)


def _main_task_metrics(model: MultiTaskModel, split: Split) -> dict[str, float]:
    was_training = model.training
    model.eval()
    logits = model(split.x)[MAIN]
    model.train(was_training)
    return {"accuracy": float((logits.argmax(-1) == split.y).float().mean()),
            "loss": float(F.cross_entropy(logits, split.y))}
