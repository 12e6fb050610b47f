"""Per-task losses against hand computations; the weighted total; model output shapes; device choice."""

from __future__ import annotations

import math

import pytest
import torch

from tuner.engine.losses import (
    MAIN,
    compute_losses,
    cross_entropy,
    kd_kl,
    member_task_terms,
    mse,
    soft_bce,
    task_loss,
    task_terms,
)
from tuner.engine.model import MultiTaskModel, build_model, resolve_device
from tuner.workloads import TaskInfo


def value(t: torch.Tensor) -> float:
    return float(t.detach())


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def test_cross_entropy_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    target = torch.tensor([0, 1])
    expected = 0.0
    for row, t in zip(logits.tolist(), target.tolist(), strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        expected += -(row[t] - log_z)
    expected /= 2
    assert float(cross_entropy(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_soft_bce_with_soft_targets_by_hand() -> None:
    logits = torch.tensor([[1.5], [-0.3], [0.0]])
    target = torch.tensor([0.9, 0.2, 0.5])  # (N,) targets, (N, 1) head output: reshaped to match
    expected = 0.0
    for z, t in zip(logits.flatten().tolist(), target.tolist(), strict=True):
        p = sigmoid(z)
        expected += -(t * math.log(p) + (1 - t) * math.log(1 - p))
    expected /= 3
    assert float(soft_bce(logits, target)) == pytest.approx(expected, rel=1e-6)


def test_soft_bce_is_smallest_at_the_soft_target() -> None:
    # with a soft target t the best logit is logit(t), not ±∞ as with hard labels
    t = torch.tensor([0.8])
    best = math.log(0.8 / 0.2)
    at_best = float(soft_bce(torch.tensor([[best]]), t))
    for z in (best - 0.5, best + 0.5, 10.0):
        assert float(soft_bce(torch.tensor([[z]]), t)) > at_best


def test_mse_by_hand() -> None:
    pred = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    target = torch.tensor([[0.5, 2.5], [1.0, -1.0]])
    expected = (0.25 + 0.25 + 1.0 + 0.0) / 4
    assert float(mse(pred, target)) == pytest.approx(expected)
    # a one-output head (N, 1) against per-sample targets (N,)
    assert float(mse(torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0]))) == pytest.approx((1 + 4) / 2)


def test_kd_by_hand() -> None:
    temperature = 2.0
    student = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    expected = 0.0
    for s_row, t_row in zip(student.tolist(), teacher.tolist(), strict=True):
        scaled = [v / temperature for v in s_row]
        log_z = math.log(sum(math.exp(v) for v in scaled))
        log_q = [v - log_z for v in scaled]
        expected += sum(p * (math.log(p) - lq) for p, lq in zip(t_row, log_q, strict=True))
    expected = expected / 2 * temperature**2  # batch mean, scaled by T²
    assert float(kd_kl(student, teacher, temperature)) == pytest.approx(expected, rel=1e-5)
    assert float(task_loss("kd", student, teacher, temperature)) == pytest.approx(expected, rel=1e-5)


def test_kd_is_zero_when_student_matches_teacher() -> None:
    logits = torch.tensor([[0.3, -1.0, 2.0]])
    teacher = torch.softmax(logits / 3.0, dim=-1)
    assert float(kd_kl(logits, teacher, 3.0)) == pytest.approx(0.0, abs=1e-6)


def test_task_loss_dispatch_and_unknown() -> None:
    logits = torch.tensor([[0.2], [1.0]])
    target = torch.tensor([0.3, 0.6])
    assert float(task_loss("bce", logits, target)) == pytest.approx(float(soft_bce(logits, target)))
    assert float(task_loss("mse", logits, target)) == pytest.approx(float(mse(logits, target)))
    with pytest.raises(ValueError, match="allowed"):
        task_loss("hinge", logits, target)


def test_compute_losses_total_is_main_plus_weighted_terms() -> None:
    torch.manual_seed(0)
    n = 5
    outputs = {MAIN: torch.randn(n, 3, requires_grad=True), "a": torch.randn(n, 1), "b": torch.randn(n, 2),
               "c": torch.randn(n, 3)}
    y = torch.tensor([0, 1, 2, 1, 0])
    aux = {"a": torch.rand(n), "b": torch.randn(n, 2), "c": torch.softmax(torch.randn(n, 3), dim=-1)}
    losses = {"a": "bce", "b": "mse", "c": "kd"}
    lambdas = {"a": 0.5, "b": 2.0, "c": 0.0}
    bd = compute_losses(outputs, y, aux, losses, lambdas, temperatures={"c": 4.0})

    assert set(bd.terms) == {MAIN, "a", "b", "c"}
    assert value(bd.terms[MAIN]) == pytest.approx(value(cross_entropy(outputs[MAIN], y)))
    assert value(bd.terms["a"]) == pytest.approx(value(soft_bce(outputs["a"], aux["a"])))
    assert value(bd.terms["b"]) == pytest.approx(value(mse(outputs["b"], aux["b"])))
    assert value(bd.terms["c"]) == pytest.approx(value(kd_kl(outputs["c"], aux["c"], 4.0)))
    expected = value(bd.terms[MAIN]) + sum(lambdas[k] * value(bd.terms[k]) for k in losses)
    assert value(bd.total) == pytest.approx(expected, rel=1e-6)
    assert bd.total.requires_grad  # the total keeps its graph for backward

    flat = bd.detached()
    assert flat["total"] == pytest.approx(expected, rel=1e-6)
    assert set(flat) == {MAIN, "a", "b", "c", "total"}
    assert all(isinstance(v, float) for v in flat.values())


def test_compute_losses_with_zero_lambdas_is_main_alone() -> None:
    outputs = {MAIN: torch.tensor([[1.0, -1.0]]), "a": torch.tensor([[5.0]])}
    bd = compute_losses(outputs, torch.tensor([1]), {"a": torch.tensor([0.0])}, {"a": "bce"}, {"a": 0.0})
    assert float(bd.total) == pytest.approx(float(bd.terms[MAIN]))
    assert float(bd.terms["a"]) > 1.0  # the unweighted term is still reported


TASKS = {"attr": TaskInfo("attr", "soft", 1), "vec": TaskInfo("vec", "real", 8), "dist": TaskInfo("dist", "probs", 5)}


@pytest.mark.parametrize("shared", [False, True])
def test_member_terms_are_each_members_own_terms(shared: bool) -> None:
    # K = 3 members, each with its own outputs; targets per member, or one batch of targets for all (shared)
    torch.manual_seed(0)
    k, b = 3, 5
    losses = {"cls": "ce", "soft": "bce", "real": "mse", "teach": "kd"}
    outputs = {MAIN: torch.randn(k, b, 4), "cls": torch.randn(k, b, 3), "soft": torch.randn(k, b, 1),
               "real": torch.randn(k, b, 2), "teach": torch.randn(k, b, 4)}
    lead = () if shared else (k,)
    y = torch.randint(0, 4, (*lead, b))
    aux = {"cls": torch.randint(0, 3, (*lead, b)), "soft": torch.rand(*lead, b), "real": torch.randn(*lead, b, 2),
           "teach": torch.softmax(torch.randn(*lead, b, 4), dim=-1)}
    temperatures = {"teach": 3.0}
    terms = member_task_terms(outputs, y, aux, losses, temperatures, shared=shared)

    assert list(terms) == [MAIN, *losses] and all(t.shape == (k,) for t in terms.values())
    for m in range(k):
        own = {name: out[m] for name, out in outputs.items()}
        alone = task_terms(own, y if shared else y[m], aux if shared else {n: t[m] for n, t in aux.items()},
                           losses, temperatures)
        for name, term in alone.items():
            assert float(terms[name][m]) == pytest.approx(float(term), rel=1e-6), (name, m)
    with pytest.raises(ValueError, match="mmd"):
        member_task_terms(outputs, y, aux, {"soft": "mmd"}, shared=shared)


def test_mlp_model_heads_and_shapes() -> None:
    model = build_model((20,), n_classes=4, aux_tasks=TASKS, hidden=16)
    assert isinstance(model, MultiTaskModel)
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    out = model(torch.randn(7, 20))
    assert {k: tuple(v.shape) for k, v in out.items()} == {MAIN: (7, 4), "attr": (7, 1), "vec": (7, 8),
                                                           "dist": (7, 5)}
    assert tuple(model.features(torch.randn(3, 20)).shape) == (3, 16)


def test_image_input_gets_a_cnn_trunk() -> None:
    model = build_model((1, 8, 8), n_classes=10, aux_tasks={"attr": TASKS["attr"]}, hidden=32)
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.trunk.modules())
    out = model(torch.rand(6, 1, 8, 8))
    assert {k: tuple(v.shape) for k, v in out.items()} == {MAIN: (6, 10), "attr": (6, 1)}


def test_workload_given_trunk_is_used() -> None:
    trunk = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    model = build_model((3, 4), n_classes=2, aux_tasks={}, hidden=99, trunk=(trunk, 5))
    assert model.trunk is trunk
    assert tuple(model(torch.randn(2, 3, 4))[MAIN].shape) == (2, 2)


def test_every_head_trains_the_shared_trunk() -> None:
    model = build_model((6,), n_classes=3, aux_tasks={"attr": TASKS["attr"]}, hidden=8)
    out = model(torch.randn(4, 6))
    out["attr"].sum().backward()
    assert model.heads[MAIN].weight.grad is None  # the aux loss does not touch the main head
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.trunk.parameters()
               if p.dim() > 1)


def test_resolve_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device().type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine the suite runs on")
def test_auto_device_is_cpu_without_cuda() -> None:
    assert resolve_device("auto") == torch.device("cpu")
