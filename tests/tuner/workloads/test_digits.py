"""The ``digits`` workload: split sizes, deterministic splits, attribute targets, and a short trial."""

from __future__ import annotations

import pytest
import torch

from tuner.engine.loop import run_trial
from tuner.engine.losses import MAIN
from tuner.engine.prepared import prepare
from tuner.spec import SpecError, parse_spec
from tuner.workloads import WorkloadError, get_workload, make_workload
from tuner.workloads.digits import DIGIT_ATTRIBUTES, N_DIGITS

ALL_TASKS = [*DIGIT_ATTRIBUTES, "ink", "mirror"]


def test_registered_and_describes_its_tasks() -> None:
    assert get_workload("digits").name == "digits"
    tasks = make_workload("digits", {}).describe_tasks()
    for name in ("loop", "vertical", "horizontal", "curvy", "symmetric", "top_heavy", "ink", "mirror"):
        assert name in tasks
        assert tasks[name].kind == "soft" and tasks[name].dim == 1 and tasks[name].description
    assert "bce" in tasks["loop"].losses


def test_split_sizes_follow_params() -> None:
    data = make_workload("digits", {"n_train": 120, "n_val": 80}).build(["loop"])
    assert (len(data.train), len(data.val)) == (120, 80)
    assert len(data.test) == N_DIGITS - 200  # n_test = 0: all the rest
    data = make_workload("digits", {"n_train": 50, "n_val": 30, "n_test": 40}).build()
    assert (len(data.train), len(data.val), len(data.test)) == (50, 30, 40)
    assert data.input_shape == (1, 8, 8) and data.n_classes == 10
    assert tuple(data.train.x.shape) == (50, 1, 8, 8)
    assert data.class_names == [str(d) for d in range(10)]


def test_inputs_and_labels() -> None:
    data = make_workload("digits", {"n_train": 200, "n_val": 100}).build()
    for split in (data.train, data.val, data.test):
        assert float(split.x.min()) >= 0.0 and float(split.x.max()) <= 1.0
        assert split.y.dtype == torch.long
        assert int(split.y.min()) >= 0 and int(split.y.max()) <= 9
    assert len(torch.unique(data.train.y)) == 10  # 200 random digits cover every class


def test_split_seed_determinism() -> None:
    a = make_workload("digits", {"n_train": 100, "n_val": 50, "split_seed": 3}).build(["loop"])
    b = make_workload("digits", {"n_train": 100, "n_val": 50, "split_seed": 3}).build(["loop"])
    c = make_workload("digits", {"n_train": 100, "n_val": 50, "split_seed": 4}).build(["loop"])
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.train.y, b.train.y)
    assert torch.equal(a.test.y, b.test.y)
    assert torch.equal(a.train.aux["loop"], b.train.aux["loop"])
    assert not torch.equal(a.train.x, c.train.x)


def test_attribute_targets_in_unit_interval_and_per_class() -> None:
    data = make_workload("digits", {"n_train": 300, "n_val": 100}).build(ALL_TASKS)
    for split in (data.train, data.val, data.test):
        assert set(split.aux) >= set(ALL_TASKS)
        for name in ALL_TASKS:
            target = split.aux[name]
            assert target.shape == (len(split),), name
            assert torch.isfinite(target).all(), name
            assert float(target.min()) >= 0.0 and float(target.max()) <= 1.0, name
        # per-class attributes are the table's row of the sample's digit
        for name, row in DIGIT_ATTRIBUTES.items():
            assert torch.equal(split.aux[name], torch.tensor(row)[split.y]), name
    # per-sample measurements vary within a class
    zeros = data.train.y == 0
    assert len(torch.unique(data.train.aux["ink"][zeros])) > 1


def test_params_that_leave_no_test_set_are_refused() -> None:
    with pytest.raises(WorkloadError) as info:
        make_workload("digits", {"n_train": 1500, "n_val": 290})
    assert info.value.field.startswith("workload.params")
    with pytest.raises(SpecError) as spec_info:
        parse_spec({"name": "d", "workload": {"name": "digits", "params": {"n_train": 5}}})
    assert dict(spec_info.value.errors).keys() == {"workload.params.n_train"}


def test_short_trial_with_two_aux_tasks() -> None:
    spec = parse_spec({
        "name": "digits-short",
        "workload": {"name": "digits", "params": {"n_train": 150, "n_val": 100, "n_test": 200}},
        "aux_tasks": [{"name": "loop", "loss": "bce"}, {"name": "ink", "loss": "mse", "lambda": {"fixed": 0.1}}],
        "training": {"epochs": 6, "batch_size": 32, "lr": 0.01, "hidden": 32},
    })
    result = run_trial(prepare(spec), {"loop": 1.0}, seed=0)

    assert result.status == "complete", result.reason
    assert result.lambdas == {"loop": 1.0, "ink": 0.1}
    assert len(result.epochs) == 6
    assert set(result.epochs[-1].val_loss) == {MAIN, "loop", "ink", "total"}
    assert result.test_accuracy is not None and result.test_accuracy > 0.4  # ten classes: chance is 0.1
    assert result.epochs[-1].train_loss[MAIN] < result.epochs[0].train_loss[MAIN]
