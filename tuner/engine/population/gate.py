"""The sanity gate of a population: K members, each on its own minibatch, trained together in one batched pass.

Each member is judged by its own ``GateJudge`` (the very bookkeeping of ``tuner.engine.sanity.sanity_gate``), so it
passes or fails on the same conditions, with the same words and figures, as the same trial alone would. A member
leaves the batch as soon as its gate has decided; a member whose loss turns non-finite (a broken λ, an lr that
blows up) fails alone, since no operation mixes members (see ``tuner.engine.population.stack``). ``should_stop`` is
asked
between steps, as in ``sanity_gate``: a stop ends the whole population's gate.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import torch

from tuner.engine.population.optim import make_stacked_optimizer
from tuner.engine.population.stack import MemberLosses, MemberStack
from tuner.engine.sanity import GateJudge, check_stop, gate_lr, own_rng, wiring_problem
from tuner.results import SanityResult
from tuner.spec import SanitySpec, TrainingSpec
from tuner.workloads import Split


def _rows_reached(grads: tuple[torch.Tensor | None, ...], k: int) -> list[bool]:
    """Per member: whether any of ``grads`` (stacked, ``(K, ...)``) is non-zero in that member's rows."""
    reached = torch.zeros(k, dtype=torch.bool)
    for g in grads:
        if g is not None:
            reached |= g.reshape(k, -1).ne(0).any(dim=1).cpu()
    return reached.tolist()


def stacked_wiring(stack: MemberStack, losses: MemberLosses) -> list[dict[str, str]]:
    """``tuner.engine.sanity.check_wiring`` for every member at once: per member, the tasks not wired and why."""
    k = len(stack)
    trunk = stack.named_trainable("trunk.")
    problems: list[dict[str, str]] = [{} for _ in range(k)]
    for name, term in losses.terms.items():
        head = stack.named_trainable(f"heads.{name}.")
        head_ok = trunk_ok = [False] * k
        if term.requires_grad:
            grads = torch.autograd.grad(term.sum(), head + trunk, allow_unused=True, retain_graph=True)
            head_ok = _rows_reached(grads[: len(head)], k)
            trunk_ok = _rows_reached(grads[len(head):], k) if trunk else [True] * k
        for row in range(k):
            problem = wiring_problem(term.requires_grad, head_ok[row], trunk_ok[row])
            if problem:
                problems[row][name] = problem
    return problems


def population_gate(
    stack: MemberStack,
    batches: Split,
    lambdas: dict[str, torch.Tensor],
    training: TrainingSpec,
    sanity: SanitySpec,
    should_stop: Callable[[], bool] | None = None,
) -> list[SanityResult]:
    """Run the sanity gate of every member of ``stack`` on a copy of its weights; results in member order.

    Args:
        stack: the freshly initialised members (left untouched).
        batches: member k's minibatch is ``batches.take(k)``: inputs of shape ``(K, B, ...)``.
        lambdas: per aux task, one λ per member.
        training: the training settings (the optimiser, and the lr the gate's own lr defaults from).
        sanity: the gate's thresholds and step budget.
        should_stop: asked before every step; True raises ``tuner.engine.sanity.GateStopped``.
    """
    with own_rng(batches.x.device):
        return _gate(stack, batches, lambdas, training, sanity, should_stop)


def _gate(stack: MemberStack, batches: Split, lambdas: dict[str, torch.Tensor], training: TrainingSpec,
          sanity: SanitySpec, should_stop: Callable[[], bool] | None) -> list[SanityResult]:
    start = time.perf_counter()
    k = len(stack)
    device = batches.x.device
    members = list(range(k))  # the member at each row of ``net``
    net = stack.select(torch.arange(k, device=device))
    lr = gate_lr(training, sanity)
    opt = make_stacked_optimizer(training, lr)
    judges = [GateJudge(sanity, lr) for _ in range(k)]
    for step in range(sanity.max_steps + 1):
        check_stop(should_stop, step)
        losses = net.losses(batches, lambdas)
        figures = losses.rows()
        accuracy = losses.hits.float().mean(dim=-1).tolist()
        wiring = stacked_wiring(net, losses) if step == 0 else []
        keep = [row for row, member in enumerate(members)
                if not judges[member].observe(step, figures[row], accuracy[row],
                                              functools.partial(wiring.__getitem__, row))]
        if not keep:
            break
        grads = torch.autograd.grad(losses.total.sum(), net.trainable())
        if len(keep) < len(members):
            rows = torch.tensor(keep, dtype=torch.long, device=device)
            net, batches = net.select(rows), batches.take(rows)
            lambdas = {name: lam.index_select(0, rows) for name, lam in lambdas.items()}
            grads = tuple(g.index_select(0, rows) for g in grads)
            opt.keep(rows)
            members = [members[row] for row in keep]
        opt.step(net.trainable(), grads)
    seconds = time.perf_counter() - start
    return [judge.verdict(seconds) for judge in judges]
