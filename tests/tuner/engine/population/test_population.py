"""Population-batched trials (``tuner.engine.population.run``): each member equals the same trial run alone.

Tolerance: a member's forward pass runs batched float32 kernels (batched matmul, grouped convolution) that may
round the last bit differently from the single model's, and training carries such differences on. Over the few
epochs here every per-task loss (train, val, test) and every sanity-gate figure of a member must agree with
``run_trial``'s to a relative 1e-4 (observed: ≤ 3e-7 on the MLP and on the CNN's training figures), and every
discrete outcome (status, accuracy, best epoch, number of epochs, gate steps and checks) must be identical. One
exception: the CNN's sanity gate, 19 steps at 3× the training lr on one 32-image batch, amplifies the grouped
convolution's rounding, and which kernels oneDNN picks for the grouped and the plain convolution depends on the
CPU, the memory layout and the threads (one here, as in all of this folder's tests): the channels-last grouped
convolution of ``tuner.engine.population.forward`` agrees to ≤ 6e-6 on this folder's machine, the channels-first one
of the
``vmap`` path only to ~0.6 %; so the gate's float figures are held to ``GATE_REL_CNN`` = 2e-2 while its
discrete outcomes and all of the CNN's training figures keep the tight tolerance. A wrong optimiser
formula, minibatch order, λ or seed moves the losses by far more than 1e-4 from the first epoch on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from tests.tuner.engine.test_training import Recorder as TrialRecorder
from tuner.engine.loop import run_trial
from tuner.engine.population.gate import population_gate
from tuner.engine.population.run import Member, Outcome, run_population
from tuner.engine.population.stack import MemberStack, lambda_tensors
from tuner.engine.prepared import prepare
from tuner.engine.sanity import NON_FINITE, sanity_gate
from tuner.results import EpochMetrics, TrialResult
from tuner.spec import SpecError, StudySpec, parse_spec
from tuner.workloads import Split

SpecFactory = Callable[..., StudySpec]
REL = 1e-4
GATE_REL_CNN = 2e-2

MEMBERS = [({"helpful": 0.0, "harmful": 0.0}, 0), ({"helpful": 1.5, "harmful": 0.1}, 1),
           ({"helpful": 0.3, "harmful": 2.0}, 2), ({"helpful": 1.0, "harmful": 1.0}, 7)]


def close(a: Any, b: Any, rel: float = REL) -> bool:
    """Equal, but floats (also inside dicts and lists) only to ``rel`` (NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=rel, abs=1e-9, nan_ok=True)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def figures(result: TrialResult) -> dict[str, Any]:
    """Everything a trial reports, but wall-clock times."""
    d = result.to_dict()
    d.pop("seconds")
    d.pop("affinity", None)  # the batched path runs no per-step probe
    for e in d["epochs"]:
        e.pop("seconds")
    if d["sanity"]:
        d["sanity"].pop("seconds")
    return d


def assert_same(alone: TrialResult, member: Outcome, gate_rel: float = REL) -> None:
    assert isinstance(member, TrialResult), member
    a, b = figures(alone), figures(member)
    assert a.keys() == b.keys()
    different = [k for k in a if not close(a[k], b[k], gate_rel if k == "sanity" else REL)]
    assert not different, {k: (a[k], b[k]) for k in different}


def run_alone(spec: StudySpec, lambdas: dict[str, float], seed: int, **kwargs: Any) -> TrialResult:
    return run_trial(prepare(spec), lambdas, seed=seed, **kwargs)


@pytest.mark.parametrize("training", [
    {"optimizer": "adam"},
    {"optimizer": "adamw", "weight_decay": 0.05},
    {"optimizer": "sgd", "weight_decay": 0.01, "lr": 0.05},
])
def test_each_member_equals_its_trial_alone(synthetic_spec: SpecFactory, training: dict[str, Any]) -> None:
    spec = synthetic_spec(training=training)
    outcomes = run_population(prepare(spec), [Member(lam, seed) for lam, seed in MEMBERS])
    assert len(outcomes) == len(MEMBERS)
    for (lam, seed), outcome in zip(MEMBERS, outcomes, strict=True):
        alone = run_alone(spec, lam, seed)
        assert alone.status == "complete" and len(alone.epochs) == 3
        assert_same(alone, outcome)
    # the members really differ (λ and seed reach each member): no two share their curves
    curves = {tuple(e.train_loss["main"] for e in o.epochs) for o in outcomes if isinstance(o, TrialResult)}
    assert len(curves) == len(MEMBERS)


def test_cnn_members_equal_their_trials_alone() -> None:
    spec = parse_spec({
        "name": "digits-pop", "workload": {"name": "digits", "params": {"n_train": 64, "n_val": 64, "n_test": 64}},
        "aux_tasks": [{"name": "loop", "loss": "bce"}, {"name": "ink", "loss": "mse"}],
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.003},
    })
    members = [({"loop": 0.5, "ink": 0.1}, 0), ({"loop": 2.0, "ink": 1.0}, 3)]
    outcomes = run_population(prepare(spec), [Member(lam, seed) for lam, seed in members])
    for (lam, seed), outcome in zip(members, outcomes, strict=True):
        assert_same(run_alone(spec, lam, seed), outcome, GATE_REL_CNN)


class Recorder(TrialRecorder):
    """``test_training``'s recorder (prunes after epoch ``prune_after``) that also fails at epoch ``error_at``."""

    def __init__(self, prune_after: int | None = None, error_at: int | None = None):
        super().__init__(prune_after)
        self.error_at = error_at

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        super().on_epoch_end(metrics)
        if self.error_at is not None and metrics.epoch >= self.error_at:
            raise RuntimeError("the store went away")


def test_stopped_members_leave_the_batch_and_the_others_go_on(synthetic_spec: SpecFactory) -> None:
    # a high lr on few samples peaks early, so patience stops some members before the last epoch
    spec = synthetic_spec(training={"epochs": 12, "lr": 0.03, "patience": 2})
    recorders = [Recorder(), Recorder(prune_after=1), Recorder(error_at=2), Recorder()]
    outcomes = run_population(prepare(spec), [Member(lam, seed, [rec])
                                              for (lam, seed), rec in zip(MEMBERS, recorders, strict=True)])

    pruned = outcomes[1]
    assert isinstance(pruned, TrialResult) and pruned.status == "pruned"
    assert [e.epoch for e in pruned.epochs] == [0, 1]
    assert recorders[1].epochs == pruned.epochs and len(recorders[1].sanity) == 1
    assert_same(run_alone(spec, *MEMBERS[1], callbacks=[Recorder(prune_after=1)]), pruned)

    failed = outcomes[2]  # its callback's error ends it alone, as it would end a trial alone
    assert isinstance(failed, RuntimeError) and "store went away" in str(failed)
    assert [e.epoch for e in recorders[2].epochs] == [0, 1, 2]

    lengths = []
    for i in (0, 3):
        outcome = outcomes[i]
        assert isinstance(outcome, TrialResult) and outcome.status == "complete"
        assert recorders[i].epochs == outcome.epochs
        assert_same(run_alone(spec, *MEMBERS[i]), outcome)
        lengths.append(len(outcome.epochs))
    assert min(lengths) < 12, "patience should stop at least one member early (else this test proves less)"


@pytest.mark.parametrize("gate", [True, False])
def test_a_broken_lambda_fails_alone(tmp_path: Any, gate: bool) -> None:
    # λ bounds up to infinity let a member's loss overflow; a NaN λ the spec refuses outright
    spec = parse_spec({
        "name": "broken-lambda",
        "workload": {"name": "synthetic", "params": {"n_train": 128, "n_val": 128, "n_test": 128}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.003},
        "sanity": {"enabled": gate},
    })
    # Specs now refuse infinite bounds (#14); a spec stored before that, or any loss that overflows, still
    # reaches the population: open the bound past validation to make one.
    helpful = spec.aux_tasks[0]
    unbounded = helpful.lambda_.model_copy(update={"high": math.inf})
    spec.aux_tasks[0] = helpful.model_copy(update={"lambda_": unbounded})
    good_a, good_b = ({"helpful": 1.0, "harmful": 0.5}, 0), ({"helpful": 0.2, "harmful": 0.0}, 5)
    infinite, nan = {"helpful": math.inf, "harmful": 0.5}, {"helpful": math.nan, "harmful": 0.5}
    outcomes = run_population(prepare(spec), [Member(*good_a), Member(infinite, 1), Member(nan, 2),
                                              Member(*good_b)])

    assert isinstance(outcomes[2], SpecError)
    assert [loc for loc, _ in outcomes[2].errors] == ["lambda.helpful"]
    with pytest.raises(SpecError):  # the trial alone is refused just the same
        run_alone(spec, nan, 2)

    broken = outcomes[1]
    assert isinstance(broken, TrialResult)
    if gate:
        assert broken.status == "failed_sanity" and broken.sanity is not None
        assert NON_FINITE in broken.sanity.failed_checks and "non-finite loss" in broken.reason
    else:  # no gate: it trains on a non-finite loss, its own weights turn NaN, its losses are NaN
        assert all(math.isnan(e.train_loss["total"]) for e in broken.epochs)
    assert_same(run_alone(spec, infinite, 1), broken)

    for (lam, seed), outcome in ((good_a, outcomes[0]), (good_b, outcomes[3])):
        assert isinstance(outcome, TrialResult) and outcome.status == "complete"
        assert all(math.isfinite(e.train_loss["total"]) for e in outcome.epochs)
        assert_same(run_alone(spec, lam, seed), outcome)


@pytest.mark.parametrize("sanity", [{}, {"max_steps": 3}, {"min_accuracy": 1.0, "max_steps": 6}])
def test_batched_gate_judges_like_the_gate_alone(synthetic_spec: SpecFactory, sanity: dict[str, Any]) -> None:
    spec = synthetic_spec(sanity=sanity)
    prep = prepare(spec)
    lambdas = [spec.complete_lambdas(lam) for lam, _ in MEMBERS]
    seeds = [seed for _, seed in MEMBERS]
    batches = [prep.sanity_batch(seed) for seed in seeds]
    stacked = Split(torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches]),
                    {k: torch.stack([b.aux[k] for b in batches]) for k in batches[0].aux})
    stack = MemberStack.of([prep.new_model(seed) for seed in seeds], prep.task_losses, prep.temperatures)
    verdicts = population_gate(stack, stacked, lambda_tensors(lambdas, prep.device), spec.training, spec.sanity)
    outcomes = set()
    for lam, seed, batch, verdict in zip(lambdas, seeds, batches, verdicts, strict=True):
        alone = sanity_gate(prep.new_model(seed), batch, prep.task_losses, lam, spec.training, spec.sanity,
                            prep.temperatures)
        a, b = alone.to_dict(), verdict.to_dict()
        a.pop("seconds"), b.pop("seconds")
        assert close(a, b), (a, b)
        outcomes.add((alone.passed, tuple(alone.failed_checks)))
    if not sanity:
        assert outcomes == {(True, ())}
    else:
        assert all(not passed for passed, _ in outcomes)


def test_a_population_whose_every_member_fails_the_gate_trains_nothing(synthetic_spec: SpecFactory) -> None:
    spec = synthetic_spec(training={"lr": 1e6, "optimizer": "sgd", "epochs": 5})
    recorders = [Recorder() for _ in MEMBERS]
    outcomes = run_population(prepare(spec), [Member(lam, seed, [rec])
                                              for (lam, seed), rec in zip(MEMBERS, recorders, strict=True)])
    for (lam, seed), outcome, rec in zip(MEMBERS, outcomes, recorders, strict=True):
        assert isinstance(outcome, TrialResult) and outcome.status == "failed_sanity"
        assert outcome.epochs == [] and rec.epochs == [] and rec.sanity == [outcome.sanity]
        assert "non-finite loss" in outcome.reason
        assert_same(run_alone(spec, lam, seed), outcome)
