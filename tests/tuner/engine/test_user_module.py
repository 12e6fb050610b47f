"""A workload's own module and optimiser (build_model, configure_optimizers, shared_parameters) and the training
controls (scheduler, precision, grad_clip, accumulate)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import tuner.workloads
from tuner.cli.main import app
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.callbacks.weighting import make_weighting
from tuner.engine.controls import StepControls, lr_factor
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.engine.runs import execute_run, run_spec
from tuner.spec import ArmSpec, SchedulerSpec, SpecError, parse_spec
from tuner.workloads import WorkloadData, WorkloadError
from tuner.workloads.synthetic import SyntheticWorkload


class TwoHeads(nn.Module):
    """A trunk with BatchNorm (optional) and one head per task; ``wrong`` breaks one output as told."""

    def __init__(self, data: WorkloadData, aux: Sequence[str], wrong: str = "", batchnorm: bool = True):
        super().__init__()
        dim = data.input_shape[0]
        norm: list[nn.Module] = [nn.BatchNorm1d(32)] if batchnorm else []
        self.trunk = nn.Sequential(nn.Linear(dim, 32), *norm, nn.ReLU())
        self.heads = nn.ModuleDict({"main": nn.Linear(32, data.n_classes)})
        for t in aux:
            self.heads[t] = nn.Linear(32, data.tasks[t].dim + (wrong == "shape"))
        self.wrong = wrong

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.trunk(x)
        out = {k: h(f) for k, h in self.heads.items()}
        if self.wrong == "missing":
            out.pop("harmful")
        return out

    def shared_parameters(self) -> Any:
        return self.trunk.parameters()


class NoShared(TwoHeads):
    shared_parameters = None  # type: ignore[assignment]


class UserWorkload(SyntheticWorkload):
    name: ClassVar[str] = "user-module"
    module: ClassVar[type[TwoHeads]] = TwoHeads
    wrong: ClassVar[str] = ""
    batchnorm: ClassVar[bool] = True

    def build_model(self, data: WorkloadData, aux_tasks: Sequence[str]) -> nn.Module:
        return self.module(data, aux_tasks, self.wrong, self.batchnorm)


class Missing(UserWorkload):
    name = "user-missing"
    wrong = "missing"


class WrongShape(UserWorkload):
    name = "user-shape"
    wrong = "shape"


class Unshared(UserWorkload):
    name = "user-unshared"
    module = NoShared


class Plain(UserWorkload):
    name = "user-plain"
    batchnorm = False


class OwnSgd(UserWorkload):
    name = "user-sgd"

    def configure_optimizers(self, model: nn.Module, lr: float, weight_decay: float) -> Any:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        return opt, torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5)


WORKLOADS = {w.name: w for w in (UserWorkload, Missing, WrongShape, Unshared, Plain, OwnSgd)}


@pytest.fixture(autouse=True)
def _user_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuner.workloads, "_plugins", lambda: WORKLOADS)


def raw(workload: str = "user-module", **training: Any) -> dict[str, Any]:
    return {"name": "user-test", "workload": {"name": workload, "params": {"n_train": 128, "n_val": 64,
                                                                           "n_test": 64}},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
            "training": {"epochs": 2, "batch_size": 32, "lr": 0.003, "device": "cpu", **training},
            "sanity": {"max_steps": 20, "min_accuracy": 0.1, "min_loss_drop": 0.01}}


def test_a_user_module_trains_with_the_gate_per_task_metrics_and_affinity() -> None:
    spec = parse_spec({**raw(), "affinity": {"every": 2}})
    prep = prepare(spec)
    result = run_trial(prep, spec.default_lambdas(), seed=1, callbacks=trial_callbacks(prep))
    assert result.status == "complete", result.reason
    assert result.sanity is not None and result.sanity.passed and not result.sanity.disconnected
    assert set(result.epochs[-1].val_loss) == {"main", "helpful", "harmful", "total"}
    assert result.affinity is not None and result.affinity["probes"] > 0
    assert result.affinity["to_main"]["helpful"] is not None


@pytest.mark.parametrize(("workload", "expected"), [
    ("user-missing", "task 'harmful': forward(x) gave no tensor for it; expected shape [32, 8]"),
    ("user-shape", "task 'helpful': output of shape [32, 3], expected [32, 2]"),
    ("user-unshared", "the affinity probe needs the module's shared_parameters()"),
])
def test_a_broken_module_is_refused_when_the_study_is_prepared(workload: str, expected: str) -> None:
    with pytest.raises(WorkloadError) as err:
        prepare(parse_spec(raw(workload)))
    assert err.value.field == "workload.build_model" and expected in err.value.message, err.value.message


def test_without_shared_parameters_gradnorm_is_refused_and_the_probe_can_be_turned_off() -> None:
    with pytest.raises(WorkloadError, match="gradnorm arm needs the module's shared_parameters"):
        prepare(parse_spec({**raw("user-unshared"), "affinity": {"every": 0}, "arms": ["gradnorm"]}))
    prepare(parse_spec({**raw("user-unshared"), "affinity": {"every": 0}}))


def test_what_a_user_module_cannot_do_is_refused_at_submission() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({**raw(), "population": {"size": 4}, "artifacts": {"save": "all"}})
    fields = [f for f, _ in err.value.errors]
    assert fields == ["population.size", "artifacts.save"], err.value.errors


def test_fp16_on_the_cpu_is_refused_and_bf16_trains() -> None:
    with pytest.raises(WorkloadError, match="fp16 needs a CUDA device"):
        prepare(parse_spec(raw(precision="fp16")))
    spec = parse_spec(raw(precision="bf16"))
    bf16 = run_trial(prepare(spec), spec.default_lambdas(), seed=1)
    fp32 = run_trial(prepare(parse_spec(raw())), spec.default_lambdas(), seed=1)
    assert bf16.status == "complete" and bf16.value is not None
    assert bf16.epochs[-1].train_loss != fp32.epochs[-1].train_loss  # bf16 arithmetic really ran
    assert abs(bf16.epochs[-1].train_loss["main"] - fp32.epochs[-1].train_loss["main"]) < 0.1


def test_accumulating_two_batches_of_b_trains_like_one_batch_of_2b() -> None:
    spec = parse_spec(raw("user-plain", batch_size=16, accumulate=2))
    twice = run_trial(prepare(spec), spec.default_lambdas(), seed=2)
    once = run_trial(prepare(parse_spec(raw("user-plain", batch_size=32))), spec.default_lambdas(), seed=2)
    assert twice.value == pytest.approx(once.value, abs=1e-6)
    assert twice.test_loss["main"] == pytest.approx(once.test_loss["main"], rel=1e-4)
    plain = run_trial(prepare(parse_spec(raw("user-plain", batch_size=16))), spec.default_lambdas(), seed=2)
    assert plain.test_loss["main"] != pytest.approx(once.test_loss["main"], rel=1e-4)


def test_grad_clip_bounds_the_update() -> None:
    prep = prepare(parse_spec(raw("user-plain", grad_clip=0.01, optimizer="sgd", lr=1.0)))
    model = prep.new_model(0)
    controls = StepControls(prep.workload, model, prep.spec.training, prep.device)
    batch = next(prep.batches("train").restart(0).epoch())
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    out = model(batch.x)
    controls.backward(torch.nn.functional.cross_entropy(out["main"], batch.y).mul(100))  # accumulate 1: steps
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((after - before).norm()) == pytest.approx(0.01, rel=1e-3)  # sgd at lr 1: update = clipped gradient


def test_schedules_step_once_per_epoch() -> None:
    cosine = SchedulerSpec(name="cosine", warmup_epochs=2)
    assert [round(lr_factor(cosine, 6, e), 4) for e in range(6)] == [0.04, 0.52, 1.0, 0.8536, 0.5, 0.1464]
    onecycle = [lr_factor(SchedulerSpec(name="onecycle"), 10, e) for e in range(10)]
    assert onecycle[0] == pytest.approx(0.04) and max(onecycle) == onecycle[3] == 1.0
    assert onecycle[-1] < 0.1
    step = SchedulerSpec(name="step", step_size=2, gamma=0.5)
    assert [lr_factor(step, 6, e) for e in range(6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    spec = parse_spec(raw(scheduler="step", epochs=3, optimizer="sgd"))
    prep = prepare(spec)
    controls = StepControls(prep.workload, prep.new_model(0), spec.training, prep.device)
    lrs = []
    for _ in range(3):
        lrs.append(controls.opt.param_groups[0]["lr"])
        controls.end_epoch()
    assert lrs == [0.003, 0.003, 0.003]  # step_size 10: no drop within 3 epochs
    own = prepare(parse_spec(raw("user-sgd")))
    mine = StepControls(own.workload, own.new_model(0), own.spec.training, own.device)
    assert isinstance(mine.opt, torch.optim.SGD)
    mine.end_epoch()
    assert mine.opt.param_groups[0]["lr"] == pytest.approx(0.0015)


def test_auxtune_validate_refuses_a_broken_module_naming_the_task(tmp_path: Path) -> None:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw("user-missing")))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code != 0
    said = " ".join(result.output.split())
    assert "workload.build_model: task 'harmful': forward(x) gave no tensor for it; expected shape [32, 8]" in said


def test_gradnorm_balances_a_user_module_on_its_shared_parameters() -> None:
    spec = parse_spec(raw())
    prep = prepare(spec)
    gradnorm = make_weighting(ArmSpec(name="gradnorm"), list(prep.task_losses), spec.training.lr)
    result = run_trial(prep, spec.default_lambdas(), seed=1, callbacks=[gradnorm])
    assert result.status == "complete", result.reason
    weights = gradnorm.summary()["final_weights"]
    assert set(weights) == {"main", "helpful", "harmful"} and weights != dict.fromkeys(weights, 1.0)


def test_a_confirmation_run_of_a_user_module_records_its_confusion_matrix() -> None:
    spec = parse_spec(raw())
    state, val, test, doc, reason = execute_run(prepare(run_spec(spec)), "best", spec.default_lambdas(), seed=5)
    assert state == "complete" and val is not None and test is not None, reason
    n = len(doc["confusion"])
    assert n == 4 and sum(map(sum, doc["confusion"])) == 64  # synthetic: 4 classes; every test sample, once
