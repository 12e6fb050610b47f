"""The one-minibatch sanity gate ("overfit one minibatch" before training for real).

With the trial's λ, a throw-away copy of the freshly initialised model trains on one fixed minibatch. The gate
passes only if every task's loss stays finite, the total loss falls by ``min_loss_drop``, the main task reaches
``min_accuracy`` on that batch, and every head is wired: its own loss gives its parameters and the trunk a
non-zero gradient. It stops as soon as all conditions hold, so a healthy set-up costs a few steps. Between steps
it asks ``should_stop`` (a worker's SIGTERM, a cancelled study): a long gate (``max_steps`` in the thousands)
must not outlive the process's reason to run it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from tuner.engine.losses import MAIN, LossBreakdown, compute_losses
from tuner.engine.model import MultiTaskModel
from tuner.engine.optim import make_optimizer
from tuner.engine.user_model import UserModule
from tuner.results import SanityResult
from tuner.spec import SanitySpec, TrainingSpec
from tuner.workloads import Split

if TYPE_CHECKING:
    from tuner.engine.prepared import PreparedStudy
    from tuner.spec import StudySpec

# Names of the checks, as stored and shown.
NON_FINITE = "non_finite_loss"
NO_GRADIENT = "no_gradient"
LOSS_NOT_DROPPING = "loss_not_dropping"
LOW_ACCURACY = "low_accuracy"


class GateStopped(Exception):
    """The gate was told to stop (``should_stop``) before it decided: there is no verdict to record."""


def check_stop(should_stop: Callable[[], bool] | None, step: int) -> None:
    """Raise ``GateStopped`` if ``should_stop`` says so (it may also raise its own exception)."""
    if should_stop is not None and should_stop():
        raise GateStopped(f"the sanity gate was stopped at step {step}")


def own_rng(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """A fork of torch's global generators (the CPU's, and ``device``'s when it is a GPU), restored on exit: what
    the gate draws (dropout, a trunk's own noise) never moves the trial's random streams."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _nonzero_grad(grads: tuple[torch.Tensor | None, ...]) -> bool:
    return any(g is not None and bool(torch.any(g != 0)) for g in grads)


def wiring_problem(has_graph: bool, head_reached: bool, trunk_reached: bool) -> str | None:
    """Why a task is not wired (its loss has no graph, or its gradient misses its head or the trunk), or None."""
    if not has_graph:
        return "its loss has no gradient at all (output detached from every parameter)"
    if not head_reached:
        return "its head's parameters get a zero gradient"
    if not trunk_reached:
        return "no gradient reaches the shared trunk (head cut off from the trunk)"
    return None


def _wiring_parts(model: MultiTaskModel) -> tuple[list[torch.nn.Parameter], Callable[[str], list[torch.nn.Parameter]]]:
    """The shared parameters, and each task's own: the trunk and the heads, or, for a workload's own module
    (``tuner.engine.user_model``), its ``shared_parameters()`` (none without) and every other parameter."""
    if isinstance(model, UserModule):
        shared = model.shared_parameters() if model.has_shared else []
        ids = {id(p) for p in shared}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
        return shared, lambda name: rest
    return ([p for p in model.trunk.parameters() if p.requires_grad],
            lambda name: [p for p in model.heads[name].parameters() if p.requires_grad])


def check_wiring(model: MultiTaskModel, breakdown: LossBreakdown) -> dict[str, str]:
    """Tasks whose own (unweighted) loss gives no gradient to their head or to the trunk, with why."""
    trunk_params, own = _wiring_parts(model)
    problems: dict[str, str] = {}
    for name, term in breakdown.terms.items():
        head_params = own(name)
        head = trunk = False
        if term.requires_grad:
            grads = torch.autograd.grad(term, head_params + trunk_params, allow_unused=True, retain_graph=True)
            # A head without parameters (the mmd task's identity, tuner.engine.domain) cannot be cut off.
            head = not head_params or _nonzero_grad(grads[: len(head_params)])
            trunk = not trunk_params or _nonzero_grad(grads[len(head_params):])
        problem = wiring_problem(term.requires_grad, head, trunk)
        if problem:
            problems[name] = problem
    return problems


class GateJudge:
    """The gate's verdict for one model, fed one step's figures at a time.

    ``sanity_gate`` and the population's batched gate (``tuner.engine.population.gate``) both feed it, so a member
    of a population is judged, worded and stopped exactly like a trial alone.

    Args:
        sanity: the gate's thresholds and step budget.
        lr: the gate's learning rate (named in the advice on a non-finite loss).
    """

    def __init__(self, sanity: SanitySpec, lr: float):
        self.sanity, self.lr = sanity, lr
        self.result = SanityResult(passed=False)

    def fail(self, check: str, reason: str) -> None:
        self.result.failed_checks.append(check)
        self.result.reason = "; ".join(filter(None, [self.result.reason, reason]))

    def observe(self, step: int, losses: dict[str, float], main_accuracy: float,
                wiring: Callable[[], dict[str, str]]) -> bool:
        """Judge the figures of ``step`` (before its update); True when the gate has decided and training stops.

        Args:
            step: 0-based step number.
            losses: per-task unweighted losses and the weighted ``total`` at this step.
            main_accuracy: the main task's accuracy on the batch at this step.
            wiring: gives ``check_wiring``'s answer; called once, at step 0, when every loss is finite.
        """
        result = self.result
        result.task_losses = {k: v for k, v in losses.items() if k != "total"}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            result.steps = step
            result.final_loss = losses["total"]
            tasks = [k for k in bad if k != "total"] or ["total"]
            self.fail(NON_FINITE, f"non-finite loss in task(s) {tasks} at step {step} "
                                  f"(lr={self.lr:g}); lower the learning rate or check the targets")
            return True
        if step == 0:
            result.initial_loss = losses["total"]
            result.disconnected = wiring()
            if result.disconnected:
                self.fail(NO_GRADIENT, "; ".join(f"task {k!r}: {v}" for k, v in result.disconnected.items()))
        result.final_loss = losses["total"]
        result.loss_drop = 1.0 - losses["total"] / result.initial_loss if result.initial_loss > 0 else 0.0
        result.main_accuracy = main_accuracy
        result.steps = step
        if (not result.failed_checks and result.loss_drop >= self.sanity.min_loss_drop
                and result.main_accuracy >= self.sanity.min_accuracy):
            result.passed = True
            return True
        return step == self.sanity.max_steps

    def verdict(self, seconds: float) -> SanityResult:
        """The result, with the checks that failed by the last step worded; ``seconds`` is the gate's time."""
        result, sanity = self.result, self.sanity
        if not result.passed and NON_FINITE not in result.failed_checks:
            if result.loss_drop < sanity.min_loss_drop:
                self.fail(LOSS_NOT_DROPPING, f"total loss fell by {result.loss_drop:.1%} in {result.steps} steps "
                                             f"({result.initial_loss:.4g} → {result.final_loss:.4g}); "
                                             f"needs ≥ {sanity.min_loss_drop:.0%}")
            if result.main_accuracy < sanity.min_accuracy:
                self.fail(LOW_ACCURACY, f"main-task accuracy on the batch reached {result.main_accuracy:.1%} "
                                        f"in {result.steps} steps; needs ≥ {sanity.min_accuracy:.0%}")
        result.seconds = seconds
        return result


def gate_lr(training: TrainingSpec, sanity: SanitySpec) -> float:
    """The gate's learning rate: ``sanity.lr``, else three times the training's."""
    return sanity.lr or training.lr * 3


def sanity_gate(
    model: MultiTaskModel,
    batch: Split,
    task_losses: dict[str, str],
    lambdas: dict[str, float],
    training: TrainingSpec,
    sanity: SanitySpec,
    temperatures: dict[str, float] | None = None,
    should_stop: Callable[[], bool] | None = None,
    make_opt: Callable[[Any, float], torch.optim.Optimizer] | None = None,
) -> SanityResult:
    """Train a copy of ``model`` on ``batch`` and report whether the set-up can learn at all.

    ``make_opt(model, lr)`` makes the gate's optimiser (a workload's own: ``PreparedStudy.gate_optimizer``);
    default: ``training.optimizer``. The gate trains in fp32, without schedule, clipping or accumulation.

    ``should_stop`` is asked before every step; when it answers True the gate raises ``GateStopped``. The gate runs
    in a fork of torch's generators (``own_rng``): the caller's random streams are where they were.
    """
    with own_rng(batch.x.device):
        return _gate(model, batch, task_losses, lambdas, training, sanity, temperatures, should_stop, make_opt)


def _gate(model: MultiTaskModel, batch: Split, task_losses: dict[str, str], lambdas: dict[str, float],
          training: TrainingSpec, sanity: SanitySpec, temperatures: dict[str, float] | None,
          should_stop: Callable[[], bool] | None,
          make_opt: Callable[[Any, float], torch.optim.Optimizer] | None) -> SanityResult:
    start = time.perf_counter()
    net = copy.deepcopy(model)
    net.train()
    lr = gate_lr(training, sanity)
    opt = make_opt(net, lr) if make_opt is not None else make_optimizer(net.param_groups(lr), training, lr)
    judge = GateJudge(sanity, lr)
    for step in range(sanity.max_steps + 1):
        check_stop(should_stop, step)
        out = net(batch.x)
        bd = compute_losses(out, batch.y, batch.aux, task_losses, lambdas, temperatures)
        accuracy = float((out[MAIN].argmax(-1) == batch.y).float().mean())
        if judge.observe(step, bd.detached(), accuracy, functools.partial(check_wiring, net, bd)):
            break
        opt.zero_grad(set_to_none=True)
        bd.total.backward()
        opt.step()
    return judge.verdict(time.perf_counter() - start)


def study_gate(prep: PreparedStudy, spec: StudySpec,
               should_stop: Callable[[], bool] | None = None) -> tuple[dict[str, float], SanityResult]:
    """The study-level gate: the sanity gate once at the default λ (1, clipped to bounds), before any trial.

    ``auxtune validate`` runs it, and a worker runs it before the first trial of a queued study: a broken set-up
    (a head cut off, a loss that cannot fall) fails the whole study with the reason instead of every trial.
    Returns the λ it used and the result; raises ``GateStopped`` when ``should_stop`` ends it first (no callback
    exists yet, so that is how a worker's SIGTERM or a cancel reaches it).
    """
    lambdas = spec.default_lambdas()
    seed = spec.training.seed
    result = sanity_gate(prep.new_model(seed), prep.sanity_batch(seed), prep.task_losses, lambdas, spec.training,
                         spec.sanity, prep.temperatures, should_stop, prep.gate_optimizer)
    return lambdas, result
