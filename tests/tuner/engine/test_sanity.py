"""The one-minibatch sanity gate: refuses broken set-ups with a reason, passes the shipped examples."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from tuner.engine.loop import run_trial
from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.engine.sanity import LOSS_NOT_DROPPING, LOW_ACCURACY, NO_GRADIENT, NON_FINITE, sanity_gate
from tuner.results import SanityResult
from tuner.spec import SpecError, StudySpec, load_spec, parse_spec

SpecFactory = Callable[..., StudySpec]


def gate(prep: PreparedStudy, lambdas: dict[str, float] | None = None, model: MultiTaskModel | None = None,
         seed: int = 0) -> SanityResult:
    spec = prep.spec
    return sanity_gate(model if model is not None else prep.new_model(seed), prep.sanity_batch(seed),
                       prep.task_losses, spec.complete_lambdas(lambdas or {}), spec.training, spec.sanity,
                       prep.temperatures)


# -- (a) a learning rate that blows up -----------------------------------------------------------------

def test_huge_lr_with_sgd_gives_non_finite_loss(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec(training={"lr": 1e6, "optimizer": "sgd"}))
    result = run_trial(prep, prep.spec.default_lambdas(), seed=0)

    assert result.status == "failed_sanity"
    assert result.sanity is not None and not result.sanity.passed
    assert result.sanity.failed_checks == [NON_FINITE]
    assert "non-finite loss" in result.reason
    assert "lower the learning rate" in result.reason
    assert result.epochs == []


def test_huge_lr_with_adam_and_bce_only_stays_finite_but_fails(synthetic_spec: SpecFactory) -> None:
    # Adam moves each weight by about lr per step, so lr=1e6 blows the logits up to ~1e6: cross-entropy and
    # bce stay finite (they grow linearly in the logits), and the gate refuses a loss that does not fall.
    prep = prepare(synthetic_spec(aux_tasks=[{"name": "helpful", "loss": "bce"}], training={"lr": 1e6}))
    assert prep.spec.training.optimizer == "adam"
    result = run_trial(prep, prep.spec.default_lambdas(), seed=0)

    assert result.status == "failed_sanity"
    assert result.sanity is not None
    assert NON_FINITE not in result.sanity.failed_checks
    assert LOSS_NOT_DROPPING in result.sanity.failed_checks
    assert "total loss fell by" in result.reason and "needs ≥ 50%" in result.reason
    assert result.sanity.final_loss > 1000 * result.sanity.initial_loss
    assert result.epochs == []


def test_huge_lr_with_adam_and_mse_overflows(synthetic_spec: SpecFactory) -> None:
    # mse squares outputs of ~1e22 after one step: float32 overflows, and the gate names the task
    prep = prepare(synthetic_spec(training={"lr": 1e6}))
    result = run_trial(prep, prep.spec.default_lambdas(), seed=0)

    assert result.status == "failed_sanity"
    assert result.sanity is not None and result.sanity.failed_checks == [NON_FINITE]
    assert "non-finite loss in task(s) ['harmful']" in result.reason
    assert result.epochs == []


def test_non_finite_target_names_the_task(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec())
    batch = prep.sanity_batch(0)
    batch.aux["helpful"] = batch.aux["helpful"].clone()
    batch.aux["helpful"][0, 0] = float("nan")
    spec = prep.spec
    result = sanity_gate(prep.new_model(0), batch, prep.task_losses, spec.default_lambdas(), spec.training,
                         spec.sanity)
    assert not result.passed
    assert result.failed_checks == [NON_FINITE]
    assert "'helpful'" in result.reason and "'harmful'" not in result.reason
    assert result.steps == 0


# -- (b) an attribute table that does not match the labels ---------------------------------------------

def test_attribute_table_missing_classes_is_refused_at_parse(tmp_path: Path) -> None:
    rows = ["f1,f2,breed"] + [f"{i * 0.1:.1f},{(i * 7) % 5},{('beagle', 'collie', 'poodle')[i % 3]}"
                              for i in range(30)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "attributes.csv").write_text("breed,ear\nbeagle,0.9\nterrier,0.2\n")
    (tmp_path / "spec.yaml").write_text(
        "name: mismatch\n"
        "workload: {name: table, params: {data: data.csv, label: breed, attributes: attributes.csv}}\n"
        "aux_tasks: [{name: ear, loss: bce}]\n")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "spec.yaml")
    errors = dict(info.value.errors)
    assert set(errors) == {"workload.params.attributes"}
    msg = errors["workload.params.attributes"]
    assert "collie" in msg and "poodle" in msg
    assert "beagle" not in msg


# -- (c) a head cut off from the trunk -----------------------------------------------------------------

class CutOffModel(MultiTaskModel):
    """Head ``cut`` sees the trunk's features detached: its loss trains the head but never the trunk."""

    cut = "helpful"

    def head_input(self, name: str, features: torch.Tensor) -> torch.Tensor:
        return features.detach() if name == self.cut else features


def cut_off_copy(prep: PreparedStudy, seed: int = 0) -> CutOffModel:
    """The trial's model for ``seed``, same weights, with head ``helpful`` cut off from the trunk."""
    model = prep.new_model(seed)
    tasks = {t.name: prep.data.tasks[t.name] for t in prep.spec.aux_tasks}
    cut = CutOffModel(model.trunk, prep.spec.training.hidden, prep.data.n_classes, tasks)
    cut.load_state_dict(model.state_dict())
    return cut


def test_head_cut_off_from_trunk_fails_with_no_gradient(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec())
    healthy = gate(prep)
    assert healthy.passed, healthy.reason  # the same set-up with normal wiring passes

    result = gate(prep, model=cut_off_copy(prep))
    assert not result.passed
    assert NO_GRADIENT in result.failed_checks
    assert set(result.disconnected) == {"helpful"}
    assert "'helpful'" in result.reason and "trunk" in result.reason
    assert "'harmful'" not in result.reason


def test_gate_fails_even_when_the_cut_task_has_lambda_zero(synthetic_spec: SpecFactory) -> None:
    # wiring is checked on each task's own unweighted loss, so λ = 0 does not hide a broken head
    prep = prepare(synthetic_spec())
    result = gate(prep, {"helpful": 0.0}, model=cut_off_copy(prep))
    assert NO_GRADIENT in result.failed_checks


# -- thresholds and figures ----------------------------------------------------------------------------

def test_unreachable_thresholds_fail_with_figures(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec(sanity={"min_accuracy": 1.0, "max_steps": 1}))
    result = gate(prep)
    assert not result.passed
    assert set(result.failed_checks) == {LOSS_NOT_DROPPING, LOW_ACCURACY}
    assert result.steps == 1
    assert "in 1 steps" in result.reason
    assert "needs ≥ 50%" in result.reason and "needs ≥ 100%" in result.reason
    assert f"{result.main_accuracy:.1%}" in result.reason
    assert f"{result.initial_loss:.4g}" in result.reason


def test_passing_gate_meets_every_threshold(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec())
    model = prep.new_model(0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = gate(prep, model=model)

    assert result.passed and result.failed_checks == [] and result.reason == ""
    assert 0 < result.steps <= prep.spec.sanity.max_steps
    assert result.loss_drop >= prep.spec.sanity.min_loss_drop
    assert result.main_accuracy >= prep.spec.sanity.min_accuracy
    assert result.final_loss < result.initial_loss
    assert set(result.task_losses) == {MAIN, "helpful", "harmful"}
    # the gate trains a copy: the trial's model is untouched
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    json.dumps(result.to_dict(), allow_nan=False)


def test_failed_gate_to_dict_is_json_safe(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec(training={"lr": 1e6, "optimizer": "sgd"}))
    d = gate(prep).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["passed"] is False and d["failed_checks"] == [NON_FINITE]


# -- the shipped examples pass at their default λ ------------------------------------------------------

def example_specs(root: Path) -> list[Path]:
    return sorted((root / "examples").glob("**/*.yaml"))


def test_there_are_example_specs(repo_root: Path) -> None:
    assert example_specs(repo_root), "examples/**/*.yaml should hold at least one spec"


@pytest.mark.parametrize("path", example_specs(Path(__file__).resolve().parents[3]),
                         ids=lambda p: str(p.relative_to(Path(__file__).resolve().parents[3])))
def test_example_passes_the_gate_at_default_lambdas(path: Path, tmp_path: Path) -> None:
    spec = load_spec(_with_generated_data(path, tmp_path))
    prep = prepare(spec)
    for seed in (0, 1):
        result = gate(prep, spec.default_lambdas(), seed=seed)
        assert result.passed, f"{path} seed {seed}: {result.reason}"


def _with_generated_data(path: Path, tmp_path: Path) -> Path:
    """``path`` itself, or, for an example whose data ``make_data.py`` generates (not committed), a copy of it
    beside a small generated folder."""
    maker = path.parent / "make_data.py"
    if not maker.exists():
        return path
    loader = importlib.util.spec_from_file_location("make_data", maker)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    module.generate(tmp_path / "pets", per_breed=10, size=32)
    return Path(shutil.copy(path, tmp_path / path.name))


def test_gate_can_be_disabled(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec(training={"epochs": 1}, sanity={"enabled": False, "min_accuracy": 1.0,
                                                                   "max_steps": 1}))
    result = run_trial(prep, {}, seed=0)
    assert result.status == "complete" and result.sanity is None
    assert len(result.epochs) == 1


def test_spec_with_sanity_batch_larger_than_train_set() -> None:
    spec = parse_spec({"name": "tiny", "workload": {"name": "synthetic", "params": {"n_train": 10}},
                       "aux_tasks": [{"name": "helpful", "loss": "bce"}], "sanity": {"batch_size": 64}})
    batch = prepare(spec).sanity_batch(0)
    assert len(batch) == 10
