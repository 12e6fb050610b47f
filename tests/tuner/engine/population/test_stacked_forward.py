"""The explicit batched forward pass (``tuner.engine.population.forward``) against the general ``vmap`` path and the
models
alone: same per-member losses, hits and gradients, on the CNN and the MLP, for per-member batches (training) and
for one batch every member shares (evaluation, run in slices), all members in one pass or in groups, with the
CPU's fused convolution (``_ConvReLU``) and without it (the layers one by one, as other devices run them), on the
built-in CNN and on convolutions of other shapes; architectures it cannot run get no plan."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import tuner.engine.population.forward
import tuner.engine.population.stack
from tuner.engine.losses import compute_losses
from tuner.engine.model import MultiTaskModel, cnn_trunk, mlp_trunk
from tuner.engine.population.forward import plan
from tuner.engine.population.stack import MemberStack, lambda_tensors
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.spec import parse_spec
from tuner.workloads import Split, TaskInfo

WORKLOADS = {
    "digits": [{"name": "loop", "loss": "bce"}, {"name": "ink", "loss": "mse"}],
    "synthetic": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
}
SEEDS = (0, 4, 9)


def prepared(workload: str) -> PreparedStudy:
    return prepare(parse_spec({
        "name": f"{workload}-stacked", "workload": {"name": workload, "params": {"n_train": 64, "n_val": 64,
                                                                                 "n_test": 64}},
        "aux_tasks": WORKLOADS[workload], "training": {"epochs": 1, "batch_size": 16},
    }))


def member_lambdas(prep: PreparedStudy) -> dict[str, torch.Tensor]:
    names = list(prep.task_losses)
    return lambda_tensors([{name: 0.25 * (i + 1) * (j + 1) for j, name in enumerate(names)}
                           for i in range(len(SEEDS))], prep.device)


def losses_and_grads(stack: MemberStack, batch: Any, lambdas: dict[str, torch.Tensor],
                     shared: bool) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    out = stack.losses(batch, lambdas, shared)
    return out.table(), out.hits, torch.autograd.grad(out.total.sum(), stack.trainable())


def count_fused(monkeypatch: Any, fused: bool) -> list[int]:
    """Turn the CPU's fused convolution on or off; the returned list counts the ``_ConvReLU`` calls."""
    monkeypatch.setattr(tuner.engine.population.forward, "FUSED_CONV", fused)
    calls = [0]
    apply = tuner.engine.population.forward._ConvReLU.apply

    def counted(*args: Any) -> torch.Tensor:
        calls[0] += 1
        return apply(*args)

    monkeypatch.setattr(tuner.engine.population.forward._ConvReLU, "apply", counted)
    return calls


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_explicit_forward_equals_the_vmap_path(workload: str, shared: bool, fused: bool, monkeypatch: Any) -> None:
    calls = count_fused(monkeypatch, fused)
    prep = prepared(workload)
    models = [prep.new_model(seed) for seed in SEEDS]
    explicit = MemberStack.of(models, prep.task_losses, prep.temperatures)
    general = MemberStack.of(models, prep.task_losses, prep.temperatures, explicit=False)
    assert explicit.forward is not None and general.forward is None
    if shared:  # the whole val split for every member, forwarded in slices of 10 rows (the last one ragged)
        monkeypatch.setattr(tuner.engine.population.stack, "FORWARD_ROWS", 10 * len(SEEDS))
        batch = prep.data.val.take(torch.arange(57))
    else:  # member k's own 16 rows
        g = torch.Generator().manual_seed(1)
        batch = prep.data.train.take(torch.stack([torch.randperm(64, generator=g)[:16] for _ in SEEDS]))
    lambdas = member_lambdas(prep)
    table, hits, grads = losses_and_grads(explicit, batch, lambdas, shared)
    ref_table, ref_hits, ref_grads = losses_and_grads(general, batch, lambdas, shared)

    assert table.shape == (len(prep.task_losses) + 2, len(SEEDS))
    assert hits.shape == (len(SEEDS), len(batch) if shared else 16)
    torch.testing.assert_close(table, ref_table, rtol=1e-5, atol=1e-7)
    assert torch.equal(hits, ref_hits)
    for grad, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    # each member is its own model: member k's total is model k's own loss on its own rows
    for k, model in enumerate(models):
        rows = batch if shared else batch.take(torch.tensor(k))
        lam = {name: float(v[k]) for name, v in lambdas.items()}
        alone = compute_losses(model(rows.x), rows.y, rows.aux, prep.task_losses, lam, prep.temperatures)
        assert float(table[-1, k]) == pytest.approx(alone.detached()["total"], rel=1e-5)
    assert len({round(float(v), 6) for v in table[-1]}) == len(SEEDS), "members differ"
    # the CNN's convolutions ran fused (on shared data all but the first, once per slice), only where asked to
    assert calls[0] == (0 if not fused or workload != "digits" else 6 if shared else 2)


class Doubled(MultiTaskModel):
    """A subclass may rewire ``features``: the plan must leave it to ``vmap``."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.trunk(x)


def test_architectures_the_plan_does_not_run_go_through_vmap() -> None:
    heads: dict[str, Any] = {}
    cnn, mlp = plan(MultiTaskModel(cnn_trunk(1, 8), 8, 10, heads)), plan(MultiTaskModel(mlp_trunk(5, 8), 8, 3, heads))
    assert cnn is not None and cnn.images  # a CNN's members go through in groups (MEMBERS_PER_PASS)
    assert mlp is not None and not mlp.images  # an MLP's all at once
    refused = [
        MultiTaskModel(nn.Sequential(nn.Flatten(), nn.Linear(5, 8), nn.Tanh()), 8, 3, heads),
        MultiTaskModel(nn.Sequential(nn.Conv2d(2, 4, 3, groups=2), nn.Flatten(), nn.Linear(4 * 36, 8)), 8, 3, heads),
        MultiTaskModel(nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.Conv2d(1, 1, 1)), 8, 3, heads),
        Doubled(mlp_trunk(5, 8), 8, 3, heads),
    ]
    assert [plan(model) for model in refused] == [None] * len(refused)

    torch.manual_seed(0)
    models = [Doubled(nn.Sequential(nn.Flatten(), nn.Linear(5, 8), nn.Tanh()), 8, 3, heads) for _ in range(2)]
    stack = MemberStack.of(models, {}, {})
    assert stack.forward is None
    x, y = torch.randn(2, 6, 5), torch.randint(0, 3, (2, 6))
    out = stack.losses(Split(x, y, {}), {})
    for k, model in enumerate(models):
        alone = compute_losses(model(x[k]), y[k], {}, {}, {})
        assert float(out.total[k].detach()) == pytest.approx(alone.detached()["total"], rel=1e-6)


def test_members_in_groups_give_what_one_pass_gives(monkeypatch: Any) -> None:
    # three members in passes of two (the last one alone) against all three in one pass
    prep = prepared("digits")
    stack = MemberStack.of([prep.new_model(seed) for seed in SEEDS], prep.task_losses, prep.temperatures)
    lambdas = member_lambdas(prep)
    g = torch.Generator().manual_seed(2)
    batch = prep.data.train.take(torch.stack([torch.randperm(64, generator=g)[:16] for _ in SEEDS]))
    names, table, grads = stack.loss_gradients(batch, lambdas)
    val_loss, val_acc = stack.evaluate(prep.data.val, lambdas)
    monkeypatch.setattr(tuner.engine.population.stack, "MEMBERS_PER_PASS", 2)
    names_2, table_2, grads_2 = stack.loss_gradients(batch, lambdas)

    assert names_2 == names == ["main", *prep.task_losses, "total"]
    torch.testing.assert_close(table_2, table, rtol=1e-6, atol=0.0)
    assert [gr.shape for gr in grads_2] == [p.shape for p in stack.trainable()]
    for grad, ref in zip(grads_2, grads, strict=True):
        torch.testing.assert_close(grad, ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
    val_loss_2, val_acc_2 = stack.evaluate(prep.data.val, lambdas)
    assert val_acc_2 == val_acc
    for row, ref_row in zip(val_loss_2, val_loss, strict=True):
        assert row == pytest.approx(ref_row, rel=1e-6)


CONV_TRUNKS = {
    # a strided convolution whose 4 × 4 output AdaptiveAvgPool2d(3) cannot tile: fused without the pooling
    "strided": (9, lambda: nn.Sequential(nn.Conv2d(2, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(3),
                                         nn.Flatten(), nn.Linear(4 * 9, 8), nn.ReLU())),
    # a dilated convolution without bias, then a 1 × 1 one whose ReLU and (4, 1) pooling windows fuse with it
    "dilated": (8, lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=2, dilation=2, bias=False), nn.ReLU(),
                                         nn.Conv2d(4, 6, 1), nn.ReLU(), nn.AdaptiveAvgPool2d((2, None)),
                                         nn.Flatten(), nn.Linear(6 * 2 * 8, 8))),
    # a pooling straight after a convolution: nothing to fuse
    "no relu": (6, lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                                         nn.Linear(3 * 4, 8), nn.ReLU())),
}


@pytest.mark.parametrize("trunk", list(CONV_TRUNKS))
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("fused", [True, False])
def test_convolutions_of_other_shapes_equal_the_vmap_path(trunk: str, shared: bool, fused: bool,
                                                          monkeypatch: Any) -> None:
    calls = count_fused(monkeypatch, fused)
    size, build = CONV_TRUNKS[trunk]
    torch.manual_seed(0)
    models = [MultiTaskModel(build(), 8, 5, {"soft": TaskInfo("soft", "soft")}) for _ in SEEDS]
    losses = {"soft": "bce"}
    explicit, general = (MemberStack.of(models, losses, {}, explicit=e) for e in (True, False))
    assert explicit.forward is not None and general.forward is None
    lead = () if shared else (len(SEEDS),)
    batch = Split(torch.randn(*lead, 7, 2, size, size), torch.randint(0, 5, (*lead, 7)), {"soft": torch.rand(*lead, 7)})
    lambdas = {"soft": torch.tensor([0.5, 1.0, 2.0])}
    table, hits, grads = losses_and_grads(explicit, batch, lambdas, shared)
    ref_table, ref_hits, ref_grads = losses_and_grads(general, batch, lambdas, shared)

    torch.testing.assert_close(table, ref_table, rtol=1e-5, atol=1e-7)
    assert torch.equal(hits, ref_hits)
    for grad, ref in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(grad, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    fusable = {"strided": 0 if shared else 1, "dilated": 1 if shared else 2, "no relu": 0}[trunk]
    assert calls[0] == (fusable if fused else 0)
