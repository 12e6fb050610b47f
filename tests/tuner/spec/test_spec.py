"""StudySpec: the issue's example is accepted with its defaults; broken specs are refused naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tuner.spec import SpecError, StudySpec, load_spec, parse_spec

PETS_YAML = """\
name: pets-like
workload:
  name: table
  params: {data: data.csv, label: breed, attributes: attributes.csv}
aux_tasks:
  - {name: ear, loss: bce}                       # λ defaults to the range [0, 2]
  - {name: hair, loss: bce, lambda: {low: 0.0, high: 2.0}}
  - {name: size, loss: mse, lambda: {fixed: 0.5}}
search: {algorithm: tpe, n_trials: 30, seed: 0}
training: {epochs: 20, batch_size: 64, lr: 0.001}
objective: {metric: val_accuracy, direction: maximize}
"""

BREEDS = ("beagle", "collie", "poodle")


def write_pets_files(folder: Path) -> None:
    """A small pets-like table: features f1..f4, label ``breed``, per-sample ``size`` in [0, 1]."""
    rows = ["f1,f2,f3,f4,breed,size"]
    for i in range(60):
        breed = BREEDS[i % 3]
        rows.append(f"{i % 7 * 0.5},{(i * 13) % 11 - 5},{i % 3 + 0.1 * (i % 5)},{(i * 7) % 17 / 3:.3f},"
                    f"{breed},{(i % 10) / 9:.3f}")
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    (folder / "attributes.csv").write_text("breed,ear,hair\nbeagle,0.95,0.1\ncollie,0.3,0.85\npoodle,0.7,0.9\n")


@pytest.fixture
def pets_spec_path(tmp_path: Path) -> Path:
    write_pets_files(tmp_path)
    path = tmp_path / "spec.yaml"
    path.write_text(PETS_YAML)
    return path


SYNTHETIC: dict[str, Any] = {
    "name": "spec-test",
    "workload": {"name": "synthetic"},
    "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
}


def synthetic(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SYNTHETIC)
    data.update(changes)
    return data


def spec_errors(data: dict[str, Any]) -> dict[str, str]:
    """Parse a spec that must fail; its errors as ``{field: message}``."""
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert info.value.errors, "a SpecError must carry at least one (field, message)"
    return dict(info.value.errors)


# -- the issue's example --------------------------------------------------------------------------------

def test_issue_example_is_accepted_with_defaults(pets_spec_path: Path) -> None:
    spec = load_spec(pets_spec_path)

    assert spec.name == "pets-like"
    # relative paths resolve against the spec file's folder, not the working directory
    assert Path(spec.workload.params["data"]) == (pets_spec_path.parent / "data.csv").resolve()
    assert Path(spec.workload.params["attributes"]) == (pets_spec_path.parent / "attributes.csv").resolve()
    tasks = {t.name: t for t in spec.aux_tasks}
    assert (tasks["ear"].lambda_.low, tasks["ear"].lambda_.high) == (0.0, 2.0)
    assert tasks["ear"].lambda_.fixed is None and not tasks["ear"].lambda_.log
    assert tasks["size"].lambda_.fixed == 0.5
    assert not tasks["size"].lambda_.searched
    assert [t.name for t in spec.searched_tasks()] == ["ear", "hair"]
    assert spec.default_lambdas() == {"ear": 1.0, "hair": 1.0, "size": 0.5}
    assert (spec.search.algorithm, spec.search.n_trials, spec.search.seed) == ("tpe", 30, 0)
    assert (spec.training.epochs, spec.training.batch_size, spec.training.lr) == (20, 64, 0.001)
    assert (spec.objective.metric, spec.objective.direction) == ("val_accuracy", "maximize")


def test_issue_example_as_json_file(pets_spec_path: Path) -> None:
    import yaml

    data = yaml.safe_load(pets_spec_path.read_text())
    json_path = pets_spec_path.with_suffix(".json")
    json_path.write_text(json.dumps(data))
    spec = load_spec(json_path)
    assert spec == load_spec(pets_spec_path)


def test_spec_file_relative_paths_do_not_depend_on_cwd(pets_spec_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    spec = load_spec(pets_spec_path)
    assert Path(spec.workload.params["data"]).is_file()


def test_objective_direction_defaults_from_metric() -> None:
    assert parse_spec(synthetic(objective={"metric": "val_loss"})).objective.direction == "minimize"
    assert parse_spec(synthetic()).objective.direction == "maximize"


# -- refused specs: each error names the field -----------------------------------------------------------

def test_unknown_workload_lists_registered_names() -> None:
    errors = spec_errors(synthetic(workload={"name": "imagenet"}))
    msg = errors["workload.name"]
    assert "imagenet" in msg
    for name in ("digits", "synthetic", "table"):
        assert name in msg


def test_unknown_aux_task_lists_available() -> None:
    errors = spec_errors(synthetic(aux_tasks=[{"name": "helpful", "loss": "bce"}, {"name": "colour", "loss": "bce"}]))
    assert set(errors) == {"aux_tasks.1.name"}
    msg = errors["aux_tasks.1.name"]
    assert "colour" in msg
    for name in ("helpful", "neutral", "harmful", "null"):
        assert name in msg


@pytest.mark.parametrize(
    ("lam", "needle"),
    [
        ({"low": -0.5}, "greater than or equal to 0"),
        ({"low": 1.5, "high": 1.0}, "must be ≤ high"),
        ({"low": 0.0, "high": 1.0, "log": True}, "log scale needs low > 0"),
    ],
)
def test_bad_lambda_bounds(lam: dict[str, Any], needle: str) -> None:
    errors = spec_errors(synthetic(aux_tasks=[{"name": "helpful", "loss": "bce", "lambda": lam}]))
    [(field, msg)] = errors.items()
    assert field.startswith("aux_tasks.0.lambda")
    assert needle in msg


def test_log_scale_with_positive_low_is_accepted() -> None:
    spec = parse_spec(synthetic(aux_tasks=[{"name": "helpful", "loss": "bce",
                                            "lambda": {"low": 1e-3, "high": 2.0, "log": True}}]))
    assert spec.aux_tasks[0].lambda_.log


def test_unknown_loss_lists_allowed() -> None:
    errors = spec_errors(synthetic(aux_tasks=[{"name": "helpful", "loss": "hinge"}]))
    msg = errors["aux_tasks.0.loss"]
    assert "hinge" in msg
    for loss in ("ce", "bce", "mse", "kd"):
        assert f"'{loss}'" in msg


def test_loss_that_does_not_fit_the_task() -> None:
    # synthetic's `harmful` has real-valued targets far outside [0, 1]: bce cannot take them
    errors = spec_errors(synthetic(aux_tasks=[{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "bce"}]))
    assert set(errors) == {"aux_tasks.1.loss"}
    assert "harmful" in errors["aux_tasks.1.loss"] and "mse" in errors["aux_tasks.1.loss"]


def test_ce_on_soft_targets_is_refused() -> None:
    errors = spec_errors(synthetic(aux_tasks=[{"name": "helpful", "loss": "ce"}]))
    assert "bce" in errors["aux_tasks.0.loss"]


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"epochs": 0}, "training.epochs"),
        ({"batch_size": 0}, "training.batch_size"),
        ({"lr": 0.0}, "training.lr"),
        ({"lr": -0.1}, "training.lr"),
        ({"device": "gpu0"}, "training.device"),
        ({"device": "cuda:x"}, "training.device"),
        ({"optimizer": "lbfgs"}, "training.optimizer"),
    ],
)
def test_bad_training_values(training: dict[str, Any], field: str) -> None:
    errors = spec_errors(synthetic(training=training))
    assert set(errors) == {field}


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1"])
def test_good_device_strings(device: str) -> None:
    assert parse_spec(synthetic(training={"device": device})).training.device == device


def test_unknown_top_level_field_is_a_typo() -> None:
    data = synthetic()
    data["trainig"] = {"epochs": 3}
    errors = spec_errors(data)
    assert "unknown field" in errors["trainig"]


def test_unknown_nested_field() -> None:
    errors = spec_errors(synthetic(training={"epoch": 3}))
    assert "unknown field" in errors["training.epoch"]


def test_duplicate_aux_task() -> None:
    errors = spec_errors(synthetic(aux_tasks=[{"name": "helpful", "loss": "bce"}, {"name": "helpful", "loss": "mse"}]))
    assert "helpful" in errors["aux_tasks"] and "more than once" in errors["aux_tasks"]


def test_objective_metric_direction_contradiction() -> None:
    errors = spec_errors(synthetic(objective={"metric": "val_loss", "direction": "maximize"}))
    assert "minimize" in errors["objective"]
    errors = spec_errors(synthetic(objective={"metric": "val_accuracy", "direction": "minimize"}))
    assert "maximize" in errors["objective"]


def test_bad_workload_param_names_it() -> None:
    errors = spec_errors(synthetic(workload={"name": "synthetic", "params": {"n_trian": 100}}))
    [(field, msg)] = errors.items()
    assert field == "workload.params.n_trian"
    assert "n_train" in msg  # lists what the workload takes


def test_several_problems_reported_together() -> None:
    errors = spec_errors(synthetic(aux_tasks=[{"name": "nope", "loss": "bce"}, {"name": "harmful", "loss": "bce"}]))
    assert set(errors) == {"aux_tasks.0.name", "aux_tasks.1.loss"}


def test_spec_must_be_a_mapping() -> None:
    with pytest.raises(SpecError):
        parse_spec(["not", "a", "mapping"])  # type: ignore[arg-type]


# -- files -----------------------------------------------------------------------------------------------

def test_load_json_spec(tmp_path: Path) -> None:
    path = tmp_path / "study.json"
    path.write_text(json.dumps(synthetic()))
    spec = load_spec(path)
    assert isinstance(spec, StudySpec)
    assert [t.name for t in spec.aux_tasks] == ["helpful", "harmful"]


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "absent.yaml")


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nworkload: {name: synthetic\n  aux_tasks: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x", ')
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(path)


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(path)


def test_table_data_file_missing_names_the_param(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(PETS_YAML)  # no data.csv next to it
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert dict(info.value.errors).keys() == {"workload.params.data"}


# -- complete_lambdas ------------------------------------------------------------------------------------

@pytest.fixture
def lam_spec() -> StudySpec:
    return parse_spec(synthetic(aux_tasks=[
        {"name": "helpful", "loss": "bce"},
        {"name": "neutral", "loss": "bce", "lambda": {"low": 0.1, "high": 0.5}},
        {"name": "harmful", "loss": "mse", "lambda": {"fixed": 0.25}},
    ]))


def test_complete_lambdas_fills_defaults_and_fixed(lam_spec: StudySpec) -> None:
    assert lam_spec.complete_lambdas({}) == {"helpful": 1.0, "neutral": 0.5, "harmful": 0.25}
    assert lam_spec.complete_lambdas({"helpful": 0.0, "neutral": 0.1}) == {
        "helpful": 0.0, "neutral": 0.1, "harmful": 0.25}
    assert lam_spec.complete_lambdas({"harmful": 0.25})["harmful"] == 0.25  # equal to the fixed value: fine


def test_complete_lambdas_unknown_name(lam_spec: StudySpec) -> None:
    with pytest.raises(SpecError) as info:
        lam_spec.complete_lambdas({"helpfull": 1.0})
    errors = dict(info.value.errors)
    assert "unknown aux task" in errors["lambda.helpfull"]
    assert "helpful" in errors["lambda.helpfull"]


@pytest.mark.parametrize("given", [{"helpful": 2.5}, {"helpful": -0.1}, {"neutral": 0.05}, {"neutral": 0.6}])
def test_complete_lambdas_out_of_bounds(lam_spec: StudySpec, given: dict[str, float]) -> None:
    [(name, _)] = given.items()
    with pytest.raises(SpecError) as info:
        lam_spec.complete_lambdas(given)
    assert "outside the bounds" in dict(info.value.errors)[f"lambda.{name}"]


def test_complete_lambdas_fixed_mismatch(lam_spec: StudySpec) -> None:
    with pytest.raises(SpecError) as info:
        lam_spec.complete_lambdas({"harmful": 1.0})
    assert "fixed at 0.25" in dict(info.value.errors)["lambda.harmful"]
