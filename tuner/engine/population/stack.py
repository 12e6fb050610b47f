"""K models of one architecture as one batched model: ``torch.func.stack_module_state`` + ``functional_call`` +
``vmap``.

``MemberStack`` holds every parameter of K ``MultiTaskModel`` s as one tensor of shape ``(K, ...)`` (a leaf that
autograd differentiates), and runs the model and the losses of all K members in one vmapped call. Each member
has its own λ (a tensor of K values per aux task) and, in training, its own minibatch (inputs of shape
``(K, B, ...)``); in evaluation every member sees the same data. The gradient of the sum of the members' losses
with respect to a stacked parameter is, row by row, each member's own gradient: members never mix.

The built-in architectures (an MLP or a small CNN trunk, ``Linear`` heads) run through an explicit batched
forward pass (``tuner.engine.population.forward``: grouped convolutions in channels-last memory, batched matmuls) and
their
losses through ``tuner.engine.losses.member_task_terms`` (a few batched kernels for all members, where ``vmap`` spends
~1 ms a step on its bookkeeping; with the heads' fused matmul, the MLP workloads' populations, whose steps are
short, run ~1.5× faster for it). Together they train a population of the digits CNN about twice as fast as
``vmap`` on a CPU (K = 16: a step 1.5×, an evaluation 3.7×). Any other architecture, or a loss
``member_task_terms`` does not batch (``mmd``), runs under ``vmap``. Both give each member its own model's
outputs.

Numerics: a member's forward pass runs batched kernels (a batched matmul for ``Linear``, a grouped convolution
for ``Conv2d``), and its losses reduce each member's batch in one kernel, which may round differently from the
single model's in the last bit of float32; everything else (the weighting of the losses, the sums of epoch means
in float64) is the same arithmetic as the single-trial path (``tuner.engine.loop``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from tuner.engine.batches import chunks
from tuner.engine.losses import MAIN, MEMBER_LOSSES, member_task_terms, task_terms, weighted_total
from tuner.engine.model import MultiTaskModel
from tuner.engine.population.forward import plan
from tuner.workloads import Split

#: Rows (members × samples) one evaluation call may run at once; bounds the memory of a large population.
EVAL_ROWS = 16384
#: Members one explicit forward and backward pass of a CNN runs at once (``loss_gradients``, ``evaluate``): with
#: more, its activations outgrow the CPU's caches (64 members in one pass train 1.35× slower per member than
#: 4 × 16). An MLP's activations are small: its members all go in one pass (fewer passes, less Python).
MEMBERS_PER_PASS = 16
#: Rows (members × samples) one explicit forward pass on shared data runs at once: a batch of evaluation data
#: goes through the trunk in slices whose activations stay in the CPU's caches (3× faster than all at once
#: on the digits CNN at K = 16); samples are independent, so the slices change no output.
FORWARD_ROWS = 1024


class MemberLosses:
    """What one batched forward pass gives: per-task unweighted losses, weighted totals, main-task hits.

    ``terms[task]`` and ``total`` have one value per member, shape ``(K,)``; ``hits`` is ``(K, B)``: whether
    each member's main-task prediction of each sample is right.
    """

    def __init__(self, terms: dict[str, torch.Tensor], total: torch.Tensor, hits: torch.Tensor):
        self.terms, self.total, self.hits = terms, total, hits

    @property
    def names(self) -> list[str]:
        """The rows of ``table``: every task (``main`` first), then ``total``."""
        return [*self.terms, "total"]

    def table(self) -> torch.Tensor:
        """Every term and then the total, detached: shape ``(n_terms + 1, K)``."""
        return torch.stack([*self.terms.values(), self.total]).detach()

    def rows(self) -> list[dict[str, float]]:
        """Per member: each task's loss and ``total``, as floats (one device sync for all)."""
        return per_member(self.names, self.table())


def per_member(names: list[str], table: torch.Tensor) -> list[dict[str, float]]:
    """A ``(len(names), K)`` table as one ``{name: value}`` dict per member (one device sync)."""
    return [dict(zip(names, column, strict=True)) for column in table.T.tolist()]


class MemberStack:
    """K members of one architecture, stacked; built with ``of(models, ...)``, narrowed with ``select(rows)``.

    Args:
        base: a module of the members' architecture (kept on the ``meta`` device: it only lends its forward).
        params: stacked parameters by name, shape ``(K, ...)``.
        buffers: stacked buffers by name.
        task_losses: the loss of each aux task, by name (as ``PreparedStudy.task_losses``).
        temperatures: the kd temperature of each aux task, by name.
        explicit: run the forward pass layer by layer (``tuner.engine.population.forward``) when the architecture
        allows;
            False: always under ``vmap`` (the general path, which the tests compare the explicit one with).
    """

    def __init__(self, base: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 task_losses: dict[str, str], temperatures: dict[str, float], explicit: bool = True):
        self.base, self.params, self.buffers = base, params, buffers
        self.task_losses, self.temperatures = task_losses, temperatures
        batched_losses = all(loss in MEMBER_LOSSES for loss in task_losses.values())
        self.forward = plan(base) if explicit and batched_losses else None
        self._train_call = vmap(self._member, in_dims=(0, 0, 0, 0, 0, 0))
        self._shared_call = vmap(self._member, in_dims=(0, 0, None, None, None, 0))

    @classmethod
    def of(cls, models: Sequence[MultiTaskModel], task_losses: dict[str, str],
           temperatures: dict[str, float], explicit: bool = True) -> MemberStack:
        """Stack ``models`` (same architecture, same device), member k = ``models[k]``."""
        params, buffers = stack_module_state(list(models))
        base = copy.deepcopy(models[0]).to("meta")
        return cls(base, params, buffers, task_losses, temperatures, explicit)

    def _like(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]) -> MemberStack:
        return MemberStack(self.base, params, buffers, self.task_losses, self.temperatures, self.forward is not None)

    def __len__(self) -> int:
        return int(next(iter(self.params.values())).shape[0])

    def trainable(self) -> list[torch.Tensor]:
        """The stacked parameters that train (those whose module parameters required a gradient)."""
        return [p for p in self.params.values() if p.requires_grad]

    def named_trainable(self, prefix: str) -> list[torch.Tensor]:
        """The trainable stacked parameters whose name starts with ``prefix`` (e.g. ``"trunk."``)."""
        return [p for name, p in self.params.items() if name.startswith(prefix) and p.requires_grad]

    def select(self, rows: torch.Tensor) -> MemberStack:
        """A new stack of the members at ``rows`` (1-D index), as new leaves: its training touches no other."""
        def pick(t: torch.Tensor) -> torch.Tensor:
            return t.detach().index_select(0, rows).requires_grad_(t.requires_grad)

        return self._like({k: pick(v) for k, v in self.params.items()}, {k: pick(v) for k, v in self.buffers.items()})

    def state(self, row: int) -> dict[str, torch.Tensor]:
        """A copy of one member's parameters and buffers (e.g. its best epoch's weights)."""
        return {k: v.detach()[row].clone() for k, v in {**self.params, **self.buffers}.items()}

    def with_states(self, states: Sequence[dict[str, torch.Tensor]]) -> MemberStack:
        """A stack of the same architecture whose member k has ``states[k]`` (from ``state``)."""
        def stacked(names: Any) -> dict[str, torch.Tensor]:
            return {k: torch.stack([s[k] for s in states]) for k in names}

        return self._like(stacked(self.params), stacked(self.buffers))

    # -- the batched forward pass -------------------------------------------------------------------------
    def _member(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor,
                y: torch.Tensor, aux: dict[str, torch.Tensor],
                lambdas: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        out = functional_call(self.base, (params, buffers), (x,))
        terms = task_terms(out, y, aux, self.task_losses, self.temperatures)
        return terms, weighted_total(terms, lambdas), out[MAIN].argmax(-1) == y

    def losses(self, batch: Split, lambdas: dict[str, torch.Tensor], shared: bool = False) -> MemberLosses:
        """Every member's losses on ``batch``: member k's own rows ``batch[k]``, or with ``shared`` the whole
        batch for every member. ``lambdas[task]`` holds one λ per member."""
        if self.forward is None:
            call = self._shared_call if shared else self._train_call
            terms, total, hits = call(self.params, self.buffers, batch.x, batch.y, batch.aux, lambdas)
            return MemberLosses(terms, total, hits)
        k = len(self)
        if shared:  # per-sample outputs, computed in slices small enough for the caches; the losses over all
            step = max(1, FORWARD_ROWS // k)
            parts = [self.forward(self.params, batch.x[i:i + step], k, True) for i in range(0, len(batch), step)]
            out = {name: torch.cat([p[name] for p in parts], dim=1) for name in parts[0]}
        else:
            out = self.forward(self.params, batch.x, k, False)
        terms = member_task_terms(out, batch.y, batch.aux, self.task_losses, self.temperatures, shared)
        return MemberLosses(terms, weighted_total(terms, lambdas), out[MAIN].argmax(-1) == batch.y)

    def loss_gradients(self, batch: Split, lambdas: dict[str, torch.Tensor],
                       shared: bool = False) -> tuple[list[str], torch.Tensor, list[torch.Tensor]]:
        """One training step's figures: every member's losses on its own rows of ``batch`` (with ``shared``: on the
        whole ``batch``, the same for every member, as a population on a data set trains) (``MemberLosses.names``
        and ``table()``) and the gradient of their sum with respect to each of ``trainable()``.

        On the explicit path of a CNN the members go through ``MEMBERS_PER_PASS`` at a time, each group's
        parameters taken as views of the stacked ones: the gradients are the same, the group's activations stay in
        the caches.
        """
        k = len(self)
        if self.forward is None or not self.forward.images or k <= MEMBERS_PER_PASS:
            out = self.losses(batch, lambdas, shared)
            return out.names, out.table(), list(torch.autograd.grad(out.total.sum(), self.trainable()))
        names: list[str] = []
        tables: list[torch.Tensor] = []
        grads: list[list[torch.Tensor]] = [[] for _ in self.trainable()]
        for first in range(0, k, MEMBERS_PER_PASS):
            last = min(first + MEMBERS_PER_PASS, k)
            part = self._like({name: p.detach()[first:last].requires_grad_(p.requires_grad)
                               for name, p in self.params.items()},
                              {name: b[first:last] for name, b in self.buffers.items()})
            rows = torch.arange(first, last, device=batch.x.device)
            out = part.losses(batch if shared else batch.take(rows),
                              {name: lam[first:last] for name, lam in lambdas.items()}, shared)
            names = out.names
            tables.append(out.table())
            for into, grad in zip(grads, torch.autograd.grad(out.total.sum(), part.trainable()), strict=True):
                into.append(grad)
        return names, torch.cat(tables, dim=1), [torch.cat(parts) for parts in grads]

    @torch.no_grad()
    def evaluate(self, split: Split | Iterable[Split],
                 lambdas: dict[str, torch.Tensor]) -> tuple[list[dict[str, float]], list[float]]:
        """Per member: mean losses per task (and weighted ``total``) and main-task accuracy over ``split`` (tensors,
        or the batches of a split: ``PreparedStudy.batches("val")``).

        The same chunks and sums as ``tuner.engine.loop.evaluate``; members go through in groups so that no call
        runs more than ``EVAL_ROWS`` rows (nor, on the explicit path of a CNN, more than ``MEMBERS_PER_PASS`` members).
        """
        k = len(self)
        sums: torch.Tensor | None = None
        names: list[str] = []
        correct: torch.Tensor | None = None
        n = 0
        for part in chunks(split) if isinstance(split, Split) else split:
            n += len(part)
            device = part.x.device
            group = max(1, EVAL_ROWS // max(1, len(part)))
            if self.forward is not None and self.forward.images:
                group = min(group, MEMBERS_PER_PASS)
            tables, hits = [], []
            for first in range(0, k, group):
                rows = torch.arange(first, min(first + group, k), device=device)
                lams = {name: lam.index_select(0, rows) for name, lam in lambdas.items()}
                out = (self if group >= k else self.select(rows)).losses(part, lams, shared=True)
                tables.append(out.table())
                names = out.names
                hits.append(out.hits.sum(-1))
            weighted = torch.cat(tables, dim=1).double() * len(part)
            sums = weighted if sums is None else sums + weighted
            correct = torch.cat(hits) if correct is None else correct + torch.cat(hits)
        assert sums is not None and correct is not None, "evaluate needs a non-empty split"
        return per_member(names, sums / n), [c / n for c in correct.tolist()]


def lambda_tensors(lambdas: Sequence[dict[str, float]], device: torch.device) -> dict[str, torch.Tensor]:
    """One float32 tensor per aux task holding each member's λ, in member order."""
    names = list(lambdas[0]) if lambdas else []
    return {name: torch.tensor([lam[name] for lam in lambdas], dtype=torch.float32, device=device)
            for name in names}
