"""Learned-weighting reference arms: uncertainty weighting, GradNorm and DWA follow their papers' rules, train,
and are stored as arms of a confirmation beside the searched λ (same splits, same seeds)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from storage import Store
from tuner.analysis.confirm import confirmation_report
from tuner.engine.callbacks.base import TrainStep
from tuner.engine.callbacks.weighting import DynamicWeightAverage, GradNorm, UncertaintyWeighting
from tuner.engine.losses import MAIN, compute_losses
from tuner.engine.prepared import prepare
from tuner.engine.runs import execute_run, run_spec
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.spec import ArmSpec, StudySpec, parse_spec

TASKS = [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}]


def one_step(spec: StudySpec) -> TrainStep:
    prep = prepare(spec)
    model = prep.new_model(0)
    batch = prep.data.train.take(torch.arange(32))
    losses = compute_losses(model(batch.x), batch.y, batch.aux, prep.task_losses, {"helpful": 1, "harmful": 1})
    return TrainStep(0, 0, model, batch, losses, losses.total)


def test_uncertainty_weighting_is_kendalls_loss(synthetic_spec: Callable[..., StudySpec]) -> None:
    step = one_step(synthetic_spec(aux_tasks=TASKS))
    method = UncertaintyWeighting(["helpful", "harmful"], lr=0.1)
    with torch.no_grad():
        method.param.copy_(torch.tensor([0.3, -0.2, 0.5]))
    s = method.param.detach().clone().requires_grad_(True)
    terms = [step.losses.terms[t] for t in method.tasks]
    kendall = sum(0.5 * torch.exp(-s[i]) * terms[i] + 0.5 * s[i] for i in range(3))
    (expected_grad,) = torch.autograd.grad(kendall, [s], retain_graph=True)
    loss = method.weigh(step)
    model_part = kendall - 0.5 * s.sum()  # the part of Kendall's loss that depends on the model
    assert float(loss.detach()) == pytest.approx(float(model_part.detach()), rel=1e-5)
    moved = method.param.detach() - s.detach()
    assert torch.all(torch.sign(moved) == -torch.sign(expected_grad))  # Adam moved s against its gradient
    assert method.weights()[MAIN] == pytest.approx(0.5 * math.exp(-float(method.param.detach()[0])))


def test_gradnorm_moves_weights_towards_balanced_gradient_norms(synthetic_spec: Callable[..., StudySpec]) -> None:
    step = one_step(synthetic_spec(aux_tasks=TASKS))
    method = GradNorm(["helpful", "harmful"], lr=0.05, alpha=1.5)
    layer = GradNorm.last_shared_layer(step)
    assert layer is list(step.model.trunk.parameters())[-2]  # the trunk's last weight matrix
    norms = [float(torch.autograd.grad(step.losses.terms[t], [layer], retain_graph=True)[0].norm())
             for t in method.tasks]
    method.weigh(step)
    w = method.weights()
    assert sum(w.values()) == pytest.approx(3.0)  # renormalised to the number of tasks
    # At the first step every loss ratio is 1, so the target is the mean norm: the task with the largest
    # gradient norm (harmful: large random targets) loses weight, the smallest gains.
    largest = method.tasks[norms.index(max(norms))]
    smallest = method.tasks[norms.index(min(norms))]
    assert largest == "harmful" and w[largest] < 1.0 < w[smallest]


def test_dwa_weights_follow_the_loss_ratios(synthetic_spec: Callable[..., StudySpec]) -> None:
    prep = prepare(run_spec(synthetic_spec(aux_tasks=TASKS, training={"epochs": 5})))
    state, val, test, doc, _ = execute_run(prep, "weighting", ArmSpec(name="dwa").model_dump(), seed=1)
    assert state == "complete" and val is not None and test is not None
    history = doc["weighting"]["weights_by_epoch"]
    assert history[0] == history[1] == {MAIN: 1.0, "helpful": 1.0, "harmful": 1.0}
    losses = [e["train_loss"] for e in doc["epochs"]]
    for epoch in range(2, 5):
        rates = torch.tensor([losses[epoch - 1][t] / losses[epoch - 2][t] for t in (MAIN, "helpful", "harmful")])
        expected = 3 * torch.softmax(rates / 2.0, dim=0)
        assert [history[epoch][t] for t in (MAIN, "helpful", "harmful")] == pytest.approx(expected.tolist(), rel=1e-5)
    assert DynamicWeightAverage(["helpful"], lr=0.1).weights() == {MAIN: 1.0, "helpful": 1.0}


def test_learned_weighting_arms_train_and_are_stored_as_arms(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = parse_spec({
        "name": "arms", "workload": {"name": "synthetic", "params": {"n_train": 160, "n_val": 160, "n_test": 300}},
        "aux_tasks": TASKS, "search": {"algorithm": "random", "n_trials": 3, "seed": 0},
        "training": {"epochs": 4, "batch_size": 32, "lr": 0.003}, "affinity": {"every": 0},
        "confirm": {"seeds": 2}, "arms": ["uncertainty", {"name": "gradnorm", "alpha": 1.0}, "dwa"],
    })
    with Store(f"sqlite:///{tmp_path / 'arms.db'}") as store:
        study = create_or_resume(store, spec)
        worker = Worker(store, config=WorkerConfig(poll_s=0.05))
        worker.run(["arms"])  # the search, then (no trial left) the automatic confirmation with its arms
        runs = store.runs(study.id)
        report = confirmation_report(store.get_study(study.id), runs)
    assert worker.runs.runs_done == len(runs) == 5 * 2
    arms = {r.arm: r for r in runs if r.kind == "weighting"}
    assert set(arms) == {"uncertainty", "gradnorm", "dwa"} and arms["gradnorm"].params["alpha"] == 1.0
    base_seeds = sorted(r.seed for r in runs if r.arm == "baseline")
    for name in arms:
        mine = [r for r in runs if r.arm == name]
        assert sorted(r.seed for r in mine) == base_seeds  # the same seeds as baseline and best
        assert all(r.state == "complete" and r.test_value is not None and 0 < r.test_value <= 1 for r in mine)
        learned = mine[0].result["weighting"]  # type: ignore[index]
        assert learned["method"] == name and len(learned["weights_by_epoch"]) == 4
        assert set(learned["effective_lambdas"]) == {"helpful", "harmful"}
    by_arm = {a["arm"]: a for a in report["arms"]}
    assert [a["arm"] for a in report["arms"]] == ["baseline", "best", "dwa", "gradnorm", "uncertainty"]
    assert by_arm["uncertainty"]["test"]["n"] == 2 and by_arm["uncertainty"]["effective_lambdas"]
    pairs = {(c["arm"], c["against"]) for c in report["comparisons"]}
    assert {("gradnorm", "baseline"), ("gradnorm", "best"), ("dwa", "best"), ("best", "baseline")} <= pairs
