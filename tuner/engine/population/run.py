"""Population-batched trials: K trials of one study, each with its own λ and seed, trained as one batched job.

A λ study trains one architecture on one data set many times with different loss weights. Here K such trials
become one ensemble (``tuner.engine.population.stack``: stacked parameters, run by an explicit batched forward
pass for the built-in models, ``tuner.engine.population.forward``, or by ``functional_call`` under ``vmap``), each
member with its own parameters, optimiser state (``tuner.engine.population.optim``), λ, seed and minibatch order,
so one step of Python overhead (CPU) or one kernel launch (GPU) serves K trials.

Each member reproduces ``tuner.engine.loop.run_trial`` with the same (spec, λ, seed): the same initial weights and
the same minibatch order, the batched sanity gate (``tuner.engine.population.gate``) first, then the same per-epoch
per-task metrics, the same best-epoch bookkeeping and early stopping (``training.patience``: both
``tuner.engine.best_epoch.BestEpoch``) and test at the best epoch. Results agree with ``run_trial`` to float32
rounding (batched kernels may round the last bit differently; over epochs such differences grow like any change of
summation order: see ``tests/tuner/engine/population/test_population.py`` for the tolerance). A member that stops
(pruned, early-stopped, failed) leaves the batch at the epoch's end; the others go on. A member whose λ the spec
refuses, or whose callback raises, ends alone with that exception.

Callbacks: ``on_sanity_end`` and ``on_epoch_end`` run per member, in member order, as in ``run_trial``; raising
``TrialPruned`` from ``on_epoch_end`` prunes that member only. ``should_stop`` is asked between the gate's steps;
a stop (or the exception a member's callback raises there) ends the whole population, as the gate is one batch.
``EpochMetrics.seconds`` is the wall time of the population's epoch and ``TrialResult.seconds`` the whole
population's wall time (gate to test): the trials shared those seconds.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tuner.engine.best_epoch import BestEpoch
from tuner.engine.callbacks.base import TrialCallback, TrialPruned, dispatch, stop_requested
from tuner.engine.gpu import apply_determinism
from tuner.engine.population.gate import population_gate
from tuner.engine.population.optim import make_stacked_optimizer
from tuner.engine.population.stack import MemberStack, lambda_tensors, per_member
from tuner.engine.prepared import PreparedStudy
from tuner.results import EpochMetrics, TrialResult
from tuner.spec import SpecError
from tuner.spec.references import saved_model_refs
from tuner.workloads import Split

logger = logging.getLogger(__name__)

#: A member's best epoch; the weights it keeps are its slice of the stack (``MemberStack.state``).
_Best = BestEpoch[dict[str, torch.Tensor]]

#: What a member ends with: its result, or the exception that ended it alone (a refused λ, a callback's error).
Outcome = TrialResult | Exception


@dataclass
class Member:
    """One trial of a population: its λ (completed and checked by the spec, as ``run_trial`` does), its seed
    (initial weights, minibatch order, sanity batch) and its callbacks."""

    lambdas: dict[str, float]
    seed: int
    callbacks: Sequence[TrialCallback] = ()


def population_support(prep: PreparedStudy) -> str | None:
    """None if the batched path can train this study's model, else why not (the caller runs trials one by one).

    Buffers (batch-norm statistics) would need per-member in-place updates under ``vmap``, and random ops
    (dropout) would draw different numbers than a trial alone; the built-in workloads have neither.
    """
    if saved_model_refs(prep.spec):
        return "a trunk or kd teacher from a saved model (tuner.engine.transfer) trains one trial at a time"
    if prep.workload.brings_model() or prep.workload.brings_optimizer():
        return "a workload's own module or optimiser (tuner.engine.user_model) trains one trial at a time"
    training = prep.spec.training
    if (training.scheduler.name != "none" or training.scheduler.warmup_epochs or training.precision != "fp32"
            or training.grad_clip is not None or training.accumulate > 1):
        return ("training.scheduler, precision, grad_clip and accumulate (tuner.engine.controls) train one trial "
                "at a time")
    model = prep.new_model(prep.spec.training.seed)
    if any(True for _ in model.buffers()):
        return "the model has buffers (e.g. batch-norm statistics), which the batched path does not update"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return "the model uses dropout, whose random draws the batched path cannot match"
    return None


def run_population(prep: PreparedStudy, members: Sequence[Member]) -> list[Outcome]:
    """Train ``members`` together and return one outcome per member, in order (see the module docstring).

    Deterministic given (spec, members) on the CPU. Raises only for a failure of the whole population (a bug,
    a model the batched path cannot run: check ``population_support`` first).
    """
    return _PopulationRun(prep, members).run()


class _PopulationRun:
    """The state of one population run; ``run`` is the fixed skeleton: λ check → gate → train → test."""

    def __init__(self, prep: PreparedStudy, members: Sequence[Member]):
        self.prep, self.spec, self.members = prep, prep.spec, list(members)
        self.start = time.perf_counter()
        self.outcomes: list[Outcome | None] = [None] * len(self.members)
        self.results: dict[int, TrialResult] = {}
        self.best: dict[int, dict[str, torch.Tensor]] = {}  # the weights to test each member with
        self._gens: dict[int, torch.Generator] = {}  # each member's minibatch order (in-memory splits)

    def run(self) -> list[Outcome]:
        apply_determinism(self.spec.training.deterministic)
        live = self._check_lambdas()
        if live:
            stack = MemberStack.of([self.prep.new_model(self.members[i].seed) for i in live], self.prep.task_losses,
                                   self.prep.temperatures)
            if self.spec.sanity.enabled:
                stack, live = self._gate(stack, live)
            template = stack
            if live:
                self._train(stack, live)
            self._test(template)
        for i, result in self.results.items():
            self.outcomes[i] = result
        return [outcome if outcome is not None else RuntimeError("no outcome") for outcome in self.outcomes]

    # -- phases ----------------------------------------------------------------------------------------------
    def _check_lambdas(self) -> list[int]:
        spec, live = self.spec, []
        for i, member in enumerate(self.members):
            try:
                lambdas = spec.complete_lambdas(member.lambdas)
            except SpecError as exc:
                self.outcomes[i] = exc
                continue
            self.results[i] = TrialResult(status="complete", lambdas=lambdas, seed=member.seed,
                                          metric=spec.objective.metric, direction=str(spec.objective.direction))
            live.append(i)
        return live

    def _lambdas(self, live: list[int]) -> dict[str, torch.Tensor]:
        return lambda_tensors([self.results[i].lambdas for i in live], self.prep.device)

    def _end(self, i: int, exc: Exception) -> None:
        """Member ``i`` ends alone with ``exc``; it has no result."""
        self.outcomes[i] = exc
        self.results.pop(i, None)

    def _gate(self, stack: MemberStack, live: list[int]) -> tuple[MemberStack, list[int]]:
        batches = [self.prep.sanity_batch(self.members[i].seed) for i in live]
        stacked = Split(torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches]),
                        {k: torch.stack([b.aux[k] for b in batches]) for k in batches[0].aux})
        callbacks = [cb for i in live for cb in self.members[i].callbacks]
        verdicts = population_gate(stack, stacked, self._lambdas(live), self.spec.training, self.spec.sanity,
                                   functools.partial(stop_requested, callbacks))
        keep = []
        for row, (i, verdict) in enumerate(zip(live, verdicts, strict=True)):
            result = self.results[i]
            result.sanity = verdict
            try:
                dispatch(self.members[i].callbacks, "on_sanity_end", verdict)
            except Exception as exc:
                self._end(i, exc)
                continue
            if verdict.passed:
                keep.append(row)
            else:
                result.status, result.reason = "failed_sanity", verdict.reason
                result.seconds = time.perf_counter() - self.start
        if len(keep) < len(live):
            stack = stack.select(torch.tensor(keep, dtype=torch.long, device=self.prep.device))
        return stack, [live[row] for row in keep]

    def _batches(self, live: list[int]) -> Iterator[tuple[Split, bool]]:
        """One epoch's batches, with whether every member shares them: in-memory splits give each member its own
        rows in its own order (``(K, B, ...)``), a data set one batch for all, read and decoded once (its order from
        the study's data seed, ``PreparedStudy.data_seed``, as each member alone would read it)."""
        train = self.prep.batches("train")
        if not train.in_memory:
            yield from ((batch, True) for batch in train.epoch())
            return
        split, bs = train.split, self.spec.training.batch_size
        assert isinstance(split, Split)
        order = torch.stack([torch.randperm(len(split), generator=self._gens[i]) for i in live]).to(self.prep.device)
        for first in range(0, len(split), bs):
            yield split.take(order[:, first:first + bs]), False

    def _train(self, stack: MemberStack, live: list[int]) -> None:
        prep, training = self.prep, self.spec.training
        n = len(prep.data.train)
        opt = make_stacked_optimizer(training, training.lr)
        self._gens = {i: torch.Generator().manual_seed(self.members[i].seed) for i in live}
        if not prep.data.in_memory:
            prep.batches("train").restart(prep.data_seed(self.members[live[0]].seed))
        tracked = {i: _Best(self.results[i], training.patience) for i in live}
        lambdas = self._lambdas(live)
        for epoch in range(training.epochs):
            t0 = time.perf_counter()
            sums: torch.Tensor | None = None
            names: list[str] = []
            for batch, shared in self._batches(live):
                names, table, grads = stack.loss_gradients(batch, lambdas, shared)
                opt.step(stack.trainable(), grads)
                weighted = table.double() * (len(batch) if shared else batch.y.shape[1])
                sums = weighted if sums is None else sums + weighted
            assert sums is not None, "an epoch needs a non-empty training split"
            train_loss = per_member(names, sums / n)
            val_loss, val_acc = stack.evaluate(prep.batches("val"), lambdas)
            seconds = time.perf_counter() - t0
            keep = [row for row, i in enumerate(live)
                    if self._epoch_end(i, stack, row, tracked[i],
                                       EpochMetrics(epoch=epoch, train_loss=train_loss[row], val_loss=val_loss[row],
                                                    val_accuracy=val_acc[row], seconds=seconds))]
            if len(keep) < len(live):
                if not keep:
                    return
                rows = torch.tensor(keep, dtype=torch.long, device=prep.device)
                stack = stack.select(rows)
                opt.keep(rows)
                lambdas = {name: lam.index_select(0, rows) for name, lam in lambdas.items()}
                live = [live[row] for row in keep]
        for row, i in enumerate(live):  # trained every epoch
            self._keep(i, stack, row, tracked[i])

    def _epoch_end(self, i: int, stack: MemberStack, row: int, best: _Best,
                   metrics: EpochMetrics) -> bool:
        """Book one member's epoch as ``run_trial`` does; True if the member trains on."""
        best.book(metrics, functools.partial(stack.state, row))
        go_on = True
        try:
            dispatch(self.members[i].callbacks, "on_epoch_end", metrics)
        except TrialPruned:
            self.results[i].status, go_on = "pruned", False
        except Exception as exc:
            self._end(i, exc)
            return False
        if best.patience_spent:
            go_on = False
        if not go_on:
            self._keep(i, stack, row, best)
        return go_on

    def _keep(self, i: int, stack: MemberStack, row: int, best: _Best) -> None:
        """Member ``i`` trains no more: test it at its best epoch's weights, or at its last ones if it never
        improved, as ``run_trial`` does."""
        self.best[i] = best.state if best.state is not None else stack.state(row)

    def _test(self, template: MemberStack) -> None:
        """Test every trained member at its best epoch's weights, in one batched evaluation."""
        tested = [i for i in self.results if i in self.best]
        if tested:
            stack = template.with_states([self.best[i] for i in tested])
            losses, accuracy = stack.evaluate(self.prep.batches("test"), self._lambdas(tested))
            for row, i in enumerate(tested):
                self.results[i].test_loss, self.results[i].test_accuracy = losses[row], accuracy[row]
        now = time.perf_counter()
        for i in tested:
            self.results[i].seconds = now - self.start
