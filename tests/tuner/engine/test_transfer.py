"""Saved models reused (``tuner.engine.transfer``): a trunk started frozen or fine-tuned, and distillation from a
teacher.

One teacher study trains on (almost) all of ``digits`` through a real worker and the store keeps its best model;
the students are small-data ``digits`` studies that start from it or distil it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import yaml
from typer.testing import CliRunner

from storage import Store
from tuner.cli.main import app
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.callbacks.base import TrialCallback
from tuner.engine.loop import run_trial
from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.engine.saved import SavedModel
from tuner.engine.transfer import TransferError, load_saved_model, teacher_model, with_saved_models
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.search import make_backend
from tuner.spec import SpecError, StudySpec, parse_spec
from tuner.spec.transfer import TRUNK_MODE_PARAM

SMALL = {"name": "digits", "params": {"n_train": 100, "n_val": 300}}


class _Keep(TrialCallback):
    def on_train_end(self, model: MultiTaskModel) -> None:
        self.model = model


def _run(store: Store, doc: dict[str, Any]) -> None:
    create_or_resume(store, parse_spec(doc))
    Worker(store, config=WorkerConfig(lease_timeout_s=60, heartbeat_s=5)).run([doc["name"]])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A store with the study ``teacher``: digits on 1100 training images, its best trial's model saved."""
    s = Store(f"sqlite:///{tmp_path_factory.mktemp('transfer') / 'store.db'}")
    _run(s, {"name": "teacher", "workload": {"name": "digits", "params": {"n_train": 1100, "n_val": 300}},
             "aux_tasks": [{"name": "loop", "loss": "bce", "lambda": {"low": 0.0, "high": 1.0}}],
             "search": {"algorithm": "random", "n_trials": 2}, "training": {"epochs": 4, "lr": 0.003},
             "affinity": {"every": 0}, "artifacts": {"save": "best"}})
    yield s
    s.close()


@pytest.fixture(scope="module")
def teacher_ref(store: Store) -> str:
    [saved] = store.artifacts(store.get_study("teacher").id)
    return f"teacher/{saved.number}"


def student(name: str, **changes: Any) -> StudySpec:
    return parse_spec({"name": name, "workload": SMALL, "aux_tasks": [{"name": "loop", "loss": "bce"}],
                       "training": {"epochs": 3, "lr": 0.01, "hidden": 16}, "affinity": {"every": 0}, **changes})


def test_best_keeps_only_the_best_trials_model(store: Store) -> None:
    study = store.get_study("teacher")
    best = store.best_trial(study.id)
    assert best is not None and best.value > 0.9
    assert [a.number for a in store.artifacts(study.id)] == [best.number]
    assert [t.state for t in store.trials(study.id)] == ["complete", "complete"]


def test_a_frozen_trunk_keeps_the_saved_features_bit_for_bit_and_only_heads_train(store: Store,
                                                                                  teacher_ref: str) -> None:
    prep = with_saved_models(prepare(student("frozen", trunk={"from_trial": teacher_ref}), "cpu"), store)
    saved = load_saved_model(store, teacher_ref, "trunk.from_trial")
    start = prep.new_model(0)
    keep = _Keep()
    result = run_trial(prep, {"loop": 1.0}, seed=0, callbacks=trial_callbacks(prep, keep))
    model = keep.model
    assert result.status == "complete" and result.trunk_mode == "freeze"
    for name, p in model.trunk.named_parameters():
        assert not p.requires_grad and torch.equal(p, saved.part("trunk.")[name])
    x = prep.data.test.x
    assert torch.equal(model.features(x), teacher_model(saved)[0](x))  # the trained student's features
    trunk_ids = {id(p) for p in model.trunk.parameters()}
    trained = [p for group in model.param_groups(0.01) for p in group["params"]]
    assert trained and not trunk_ids & {id(p) for p in trained}
    for name in (MAIN, "loop"):
        assert not torch.equal(model.heads[name].weight, start.heads[name].weight)
    assert not model.trunk.training  # a frozen trunk stays in eval mode


def _trunk_change(model: MultiTaskModel, saved: SavedModel) -> float:
    old = saved.part("trunk.")
    return max(float((p.detach() - old[n]).abs().max()) for n, p in model.trunk.named_parameters())


def test_finetuning_changes_the_trunk_and_a_lower_lr_changes_it_less(store: Store, teacher_ref: str) -> None:
    trunk = {"from_trial": teacher_ref, "mode": ["finetune", "finetune_lower_lr"], "lr_factor": 0.05}
    prep = with_saved_models(prepare(student("tuned", trunk=trunk), "cpu"), store)
    saved = load_saved_model(store, teacher_ref, "trunk.from_trial")
    change = {}
    for mode in ("finetune", "finetune_lower_lr"):
        keep = _Keep()
        result = run_trial(prep, {"loop": 1.0}, seed=0, callbacks=trial_callbacks(prep, keep), trunk_mode=mode)
        assert result.trunk_mode == mode
        change[mode] = _trunk_change(keep.model, saved)
    assert change["finetune"] > 1e-3
    assert 0.0 < change["finetune_lower_lr"] < change["finetune"] / 2


def test_a_searched_trunk_mode_runs_through_the_worker_on_a_grid(store: Store, teacher_ref: str) -> None:
    doc = {"name": "modes", "workload": SMALL, "aux_tasks": [{"name": "loop", "loss": "bce",
                                                             "lambda": {"low": 0.0, "high": 1.0}}],
           "trunk": {"from_trial": teacher_ref, "mode": ["freeze", "finetune"]},
           "search": {"algorithm": "grid", "grid_points": 2, "n_trials": 4},
           "training": {"epochs": 2, "lr": 0.01}, "artifacts": {"save": "all"}}
    _run(store, doc)
    study = store.get_study("modes")
    trials = store.trials(study.id)
    assert {(t.params["loop"], t.params[TRUNK_MODE_PARAM]) for t in trials} == {
        (0.0, "freeze"), (1.0, "freeze"), (0.0, "finetune"), (1.0, "finetune")}  # the whole grid, once each
    teacher = load_saved_model(store, teacher_ref, "trunk.from_trial").part("trunk.")
    for t in trials:
        assert t.state == "complete" and t.result is not None
        assert t.result["trunk_mode"] == t.params[TRUNK_MODE_PARAM]
        saved = load_saved_model(store, f"modes/{t.number}", "x")
        same = all(torch.equal(v, teacher[k]) for k, v in saved.part("trunk.").items())
        assert same == (t.params[TRUNK_MODE_PARAM] == "freeze")
        assert saved.meta["architecture"]["hidden"] == 64  # the teacher's width, not the student's default


@pytest.mark.parametrize("algorithm", ["tpe", "random", "gp", "nsga2"])
def test_samplers_search_the_trunk_mode_next_to_the_lambdas(algorithm: str) -> None:
    spec = student("s", trunk={"from_trial": "t/0", "mode": ["freeze", "finetune", "finetune_lower_lr"]},
                   search={"algorithm": algorithm, "n_trials": 12, "controls": False})
    backend = make_backend(spec)
    study = optuna.create_study(direction="maximize", sampler=backend.sampler())
    seen = set()
    for i in range(12):
        trial = study.ask()
        params = backend.suggest(trial)
        assert 0.0 <= params["loop"] <= 2.0
        seen.add(params[TRUNK_MODE_PARAM])
        study.tell(trial, float(params[TRUNK_MODE_PARAM] == "finetune") + i * 1e-3)
    assert seen <= {"freeze", "finetune", "finetune_lower_lr"} and len(seen) >= 2


@pytest.mark.parametrize("algorithm", ["cmaes", "qmc"])
def test_continuous_only_samplers_refuse_a_searched_trunk_mode(algorithm: str) -> None:
    with pytest.raises(SpecError) as err:
        make_backend(student("s", trunk={"from_trial": "t/0", "mode": ["freeze", "finetune"]},
                             search={"algorithm": algorithm}))
    assert err.value.errors[0][0] == "trunk.mode"


def test_missing_saved_models_fail_with_the_field_named(store: Store) -> None:
    spec = student("m", aux_tasks=[{"name": "kd", "loss": "kd", "teacher": "teacher/7"}])
    with pytest.raises(TransferError) as err:
        with_saved_models(prepare(spec, "cpu"), store)
    assert err.value.field == "aux_tasks.0.teacher" and "has no trial 7" in err.value.message


def test_specs_without_transfer_store_as_before(tmp_path: Path) -> None:
    doc = student("plain").model_dump(mode="json", by_alias=True)
    assert not {"trunk", "artifacts"} & set(doc) and "teacher" not in doc["aux_tasks"][0]


def _kd_prep(store: Store, teacher_ref: str) -> PreparedStudy:
    spec = parse_spec({"name": "kd", "workload": SMALL,
                       "aux_tasks": [{"name": "kd", "loss": "kd", "teacher": teacher_ref, "temperature": 4.0,
                                      "lambda": {"low": 0.0, "high": 4.0}}],
                       "training": {"epochs": 20, "batch_size": 32, "lr": 0.01, "hidden": 32},
                       "sanity": {"enabled": False}, "affinity": {"every": 0}})
    return with_saved_models(prepare(spec, "cpu"), store)


def test_distilling_a_full_data_teacher_helps_a_small_data_student(store: Store, teacher_ref: str) -> None:
    prep = _kd_prep(store, teacher_ref)
    model = prep.new_model(0)
    assert model.heads["kd"] is model.heads[MAIN]  # the student's own predictions are distilled
    assert model.heads[MAIN].in_features == 32  # a narrower student than the teacher (64)
    by_val = {lam: run_trial(prep, {"kd": lam}, seed=0).value or 0.0 for lam in (0.5, 1.0, 2.0)}
    best = max(by_val, key=lambda lam: by_val[lam])
    seeds = (1, 2, 3)
    test = {lam: [run_trial(prep, {"kd": lam}, seed=s).test_accuracy or 0.0 for s in seeds] for lam in (0.0, best)}
    assert statistics.mean(test[best]) > statistics.mean(test[0.0]) + 0.01, test


def test_workloads_tell_their_shapes_without_building(tmp_path: Path) -> None:
    rows = ["breed,height,weight,size"] + [f"{'ab'[i % 2]},{i},{i * 2 % 7},{(i % 5) / 4}" for i in range(40)]
    (tmp_path / "data.csv").write_text("\n".join(rows))
    for workload, aux in (({"name": "digits", "params": {"n_train": 50}}, "loop"),
                          ({"name": "synthetic", "params": {"dim": 7, "n_train": 16}}, "helpful"),
                          ({"name": "table", "params": {"data": str(tmp_path / "data.csv"), "label": "breed"}},
                           "size")):
        spec = parse_spec({"name": "s", "workload": workload, "aux_tasks": [{"name": aux, "loss": "bce"}]})
        prep = prepare(spec, "cpu")
        assert prep.workload.describe_shapes((aux,)) == (prep.data.input_shape, prep.data.n_classes)


def test_the_cli_checks_saved_models_before_it_stores_or_trains(store: Store, teacher_ref: str,
                                                                tmp_path: Path) -> None:
    doc = student("cli-bad", aux_tasks=[{"name": "kd", "loss": "kd", "teacher": "teacher/7"}]).model_dump(
        mode="json", by_alias=True)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(app, ["run", str(tmp_path / "bad.yaml"), "--db", store.url])
    assert r.exit_code == 2 and "aux_tasks.0.teacher: study 'teacher' has no trial 7" in r.stderr, r.output
    assert "cli-bad" not in [s.name for s in store.list_studies()]  # nothing stored
    good = student("cli-good", trunk={"from_trial": teacher_ref}).model_dump(mode="json", by_alias=True)
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    r = CliRunner().invoke(app, ["validate", str(tmp_path / "good.yaml"), "--db", store.url])
    assert r.exit_code == 0 and "sanity gate passed" in r.stdout, r.output


def test_validate_does_not_create_a_store_to_look_for_saved_models(teacher_ref: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    good = student("cli-good", trunk={"from_trial": teacher_ref}).model_dump(mode="json", by_alias=True)
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUXTUNE_DB", raising=False)
    r = CliRunner().invoke(app, ["validate", "good.yaml"])  # the default store, ./auxtune.db, is not there
    assert r.exit_code == 2, r.output
    assert f"trunk.from_trial: {teacher_ref} names a saved model, but the store" in r.stderr
    assert "--db" in r.stderr
    assert not (tmp_path / "auxtune.db").exists()


def test_a_population_study_with_a_saved_trunk_runs_its_trials_one_at_a_time(store: Store, teacher_ref: str) -> None:
    doc = student("pop", trunk={"from_trial": teacher_ref}, population={"size": 4},
                  search={"algorithm": "random", "n_trials": 3}, training={"epochs": 1, "lr": 0.01}).model_dump(
        mode="json", by_alias=True)
    _run(store, doc)
    trials = store.trials(store.get_study("pop").id)
    assert [t.state for t in trials] == ["complete"] * 3
    assert all(t.result is not None and t.result["trunk_mode"] == "freeze" for t in trials)
