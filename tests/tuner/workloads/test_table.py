"""The ``table`` workload: the user's own CSV/Parquet data plus an optional per-class attribute table."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.spec import SpecError, load_spec, parse_spec
from tuner.workloads import WorkloadError, make_workload

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "table"
ATTRIBUTES = {"cat": (0.9, 0.1), "dog": (0.2, 0.8), "fish": (0.0, 0.5)}  # class -> (furry, big)


def pets_frame(n: int = 90, seed: int = 0, labels: list[Any] | None = None) -> pd.DataFrame:
    """Three separable classes, two features, a per-sample soft score and a skewed per-sample real value."""
    rng = np.random.default_rng(seed)
    labels = labels or list(ATTRIBUTES)
    y = np.arange(n) % len(labels)
    rng.shuffle(y)
    return pd.DataFrame({
        "a": y * 3.0 + rng.normal(size=n),
        "b": rng.normal(size=n),
        "score": rng.uniform(size=n),
        "skewed": np.exp(2.0 * rng.normal(size=n)),
        "kind": [labels[i] for i in y],
    })


def attributes_frame(label: str = "kind") -> pd.DataFrame:
    return pd.DataFrame({label: list(ATTRIBUTES), "furry": [v[0] for v in ATTRIBUTES.values()],
                         "big": [v[1] for v in ATTRIBUTES.values()]})


def write(frame: pd.DataFrame, path: Path) -> str:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture
def pets(tmp_path: Path) -> dict[str, str]:
    """Params of a valid table workload on files in ``tmp_path``."""
    return {"data": write(pets_frame(), tmp_path / "data.csv"), "label": "kind",
            "attributes": write(attributes_frame(), tmp_path / "attributes.csv")}


def spec_dict(params: dict[str, Any], aux: list[tuple[str, str]] | None = None, **extra: Any) -> dict[str, Any]:
    aux = [("furry", "bce")] if aux is None else aux
    return {"name": "table-test", "workload": {"name": "table", "params": params},
            "aux_tasks": [{"name": n, "loss": loss} for n, loss in aux], **extra}


def spec_errors(params: dict[str, Any], aux: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(spec_dict(params, aux))
    return info.value.errors


def build(params: dict[str, Any], aux: tuple[str, ...] = ()) -> Any:
    return make_workload("table", params).build(aux)


def all_rows(data: Any, name: str) -> torch.Tensor:
    return torch.cat([data.train.aux[name], data.val.aux[name], data.test.aux[name]])


# -- loading -------------------------------------------------------------------------------------------------


def test_csv_and_parquet_give_the_same_data(tmp_path: Path) -> None:
    frame, attrs = pets_frame(), attributes_frame()
    from_csv = build({"data": write(frame, tmp_path / "d.csv"), "label": "kind",
                      "attributes": write(attrs, tmp_path / "a.csv")}, ("furry", "score"))
    from_parquet = build({"data": write(frame, tmp_path / "d.parquet"), "label": "kind",
                          "attributes": write(attrs, tmp_path / "a.parquet")}, ("furry", "score"))
    for split in ("train", "val", "test"):
        a, b = getattr(from_csv, split), getattr(from_parquet, split)
        assert torch.allclose(a.x, b.x, atol=1e-5)
        assert torch.equal(a.y, b.y)
        for task in ("furry", "score"):
            assert torch.allclose(a.aux[task], b.aux[task], atol=1e-6)
    assert from_csv.class_names == from_parquet.class_names == ["cat", "dog", "fish"]


def test_string_labels(pets: dict[str, str]) -> None:
    data = build(pets)
    assert data.n_classes == 3 and data.class_names == ["cat", "dog", "fish"]
    assert data.train.y.dtype == torch.long
    # "a" grows with the class index in the file, and the class index follows the sorted names.
    a = torch.cat([data.train.x[:, 0], data.val.x[:, 0], data.test.x[:, 0]])
    y = torch.cat([data.train.y, data.val.y, data.test.y])
    means = [float(a[y == c].mean()) for c in range(3)]
    assert means == sorted(means)


def test_integer_labels_sort_numerically_and_match_float_labels_in_attribute_table(tmp_path: Path) -> None:
    frame = pets_frame(labels=[2, 10, 7])
    attrs = pd.DataFrame({"kind": [10.0, 2.0, 7.0], "furry": [0.1, 0.2, 0.7]})  # same classes, read as floats
    params = {"data": write(frame, tmp_path / "d.csv"), "label": "kind",
              "attributes": write(attrs, tmp_path / "a.csv")}
    assert pd.read_csv(params["data"])["kind"].dtype.kind == "i"
    data = build(params, ("furry",))
    assert data.class_names == ["2", "7", "10"]
    expected = torch.tensor([0.2, 0.7, 0.1])
    for split in (data.train, data.val, data.test):
        assert torch.allclose(split.aux["furry"], expected[split.y])
    spec = parse_spec(spec_dict(params))
    assert [t.name for t in spec.aux_tasks] == ["furry"]


def test_per_class_attribute_targets_land_on_their_class(pets: dict[str, str]) -> None:
    data = build(pets, ("furry", "big"))
    names = data.class_names
    for split in (data.train, data.val, data.test):
        for i in range(len(split)):
            furry, big = ATTRIBUTES[names[int(split.y[i])]]
            assert split.aux["furry"][i].item() == pytest.approx(furry)
            assert split.aux["big"][i].item() == pytest.approx(big)


def test_tasks_describe_attribute_and_per_sample_columns(pets: dict[str, str]) -> None:
    tasks = make_workload("table", pets).describe_tasks()
    assert tasks["furry"].kind == "soft" and "per-class" in tasks["furry"].description
    assert tasks["score"].kind == "soft" and "per-sample" in tasks["score"].description
    assert tasks["skewed"].kind == "real" and tasks["skewed"].losses == ("mse",)
    assert "kind" not in tasks


def test_per_sample_aux_column_is_not_a_feature_but_unused_columns_are(pets: dict[str, str]) -> None:
    assert build(pets).input_shape == (4,)  # a, b, score, skewed
    assert build(pets, ("furry",)).input_shape == (4,)  # per-class attributes never were features
    data = build(pets, ("score", "furry"))
    assert data.input_shape == (3,)  # score is a target now
    assert build(pets, ("score", "skewed")).input_shape == (2,)
    raw = pd.read_csv(pets["data"])["score"].to_numpy(dtype=np.float32)
    assert sorted(all_rows(data, "score").tolist()) == pytest.approx(sorted(raw.tolist()))


def test_boolean_columns_are_numbers(tmp_path: Path, pets: dict[str, str]) -> None:
    frame = pets_frame().assign(vaccinated=lambda f: f["b"] > 0)
    params = {**pets, "data": write(frame, tmp_path / "bools.csv")}
    assert make_workload("table", params).describe_tasks()["vaccinated"].kind == "soft"
    assert build(params).input_shape == (5,)
    data = build(params, ("vaccinated",))
    assert data.input_shape == (4,) and set(all_rows(data, "vaccinated").tolist()) == {0.0, 1.0}


def test_features_param_selects_columns_and_refuses_targets(pets: dict[str, str]) -> None:
    assert build({**pets, "features": ["a"]}, ("score",)).input_shape == (1,)
    with pytest.raises(WorkloadError) as info:
        build({**pets, "features": ["a", "score"]}, ("score",))
    assert info.value.field == "workload.params.features"
    errors = spec_errors({**pets, "features": ["a", "nope"]})
    assert errors[0][0] == "workload.params.features" and "nope" in errors[0][1]


# -- splits and standardisation ------------------------------------------------------------------------------


def test_split_fractions_and_seed(pets: dict[str, str]) -> None:
    data = build({**pets, "val_fraction": 0.2, "test_fraction": 0.3}, ("skewed",))
    assert (len(data.train), len(data.val), len(data.test)) == (45, 18, 27)
    # "skewed" holds distinct raw values: every row lands in exactly one split.
    assert len(set(all_rows(data, "skewed").tolist())) == 90

    again = build({**pets, "val_fraction": 0.2, "test_fraction": 0.3}, ("skewed",))
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(data, split).x, getattr(again, split).x)
        assert torch.equal(getattr(data, split).aux["skewed"], getattr(again, split).aux["skewed"])
    other = build({**pets, "val_fraction": 0.2, "test_fraction": 0.3, "split_seed": 1}, ("skewed",))
    assert set(other.val.aux["skewed"].tolist()) != set(data.val.aux["skewed"].tolist())


def test_fractions_must_leave_training_data(pets: dict[str, str]) -> None:
    errors = spec_errors({**pets, "val_fraction": 0.5, "test_fraction": 0.5})
    assert errors[0][0].startswith("workload.params") and "< 1" in errors[0][1]


def test_features_are_standardised_with_training_statistics(tmp_path: Path, pets: dict[str, str]) -> None:
    # A copy of the skewed feature as a per-sample target carries each sample's raw value through the split.
    frame = pets_frame()
    frame["skewed_copy"] = frame["skewed"]
    params = {**pets, "data": write(frame, tmp_path / "copy.csv")}
    data = build(params, ("skewed_copy",))
    col = 3  # a, b, score, skewed
    raw_train = data.train.aux["skewed_copy"]
    mean, std = raw_train.mean(), raw_train.std()
    assert data.train.x.mean(0).abs().max() < 1e-4
    assert torch.allclose(data.train.x.std(0), torch.ones(4), atol=1e-4)
    for split in (data.train, data.val, data.test):
        assert torch.allclose(split.x[:, col], (split.aux["skewed_copy"] - mean) / std, atol=1e-4)
    # The whole table's statistics differ: val/test were not used.
    everything = all_rows(data, "skewed_copy")
    assert abs(float(everything.mean() - mean)) > 1e-3


# -- errors a user can fix -----------------------------------------------------------------------------------


def test_missing_data_file(pets: dict[str, str], tmp_path: Path) -> None:
    errors = spec_errors({**pets, "data": str(tmp_path / "nope.csv")})
    assert errors == [("workload.params.data", errors[0][1])] and "file not found" in errors[0][1]


def test_missing_attributes_file(pets: dict[str, str], tmp_path: Path) -> None:
    errors = spec_errors({**pets, "attributes": str(tmp_path / "nope.parquet")})
    assert errors[0][0] == "workload.params.attributes" and "file not found" in errors[0][1]


def test_unreadable_file(pets: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    errors = spec_errors({**pets, "data": str(bad)})
    assert errors[0][0] == "workload.params.data" and "cannot read" in errors[0][1]


def test_missing_label_column(pets: dict[str, str]) -> None:
    errors = spec_errors({**pets, "label": "breed"})
    assert errors[0][0] == "workload.params.label"
    assert "'breed'" in errors[0][1] and "kind" in errors[0][1]  # lists the columns there are


def test_class_absent_from_attribute_table(tmp_path: Path, pets: dict[str, str]) -> None:
    attrs = attributes_frame().iloc[:2]  # no row for fish
    errors = spec_errors({**pets, "attributes": write(attrs, tmp_path / "short.csv")})
    assert errors[0][0] == "workload.params.attributes" and "fish" in errors[0][1]


def test_attribute_table_without_label_column(tmp_path: Path, pets: dict[str, str]) -> None:
    attrs = attributes_frame(label="species")
    errors = spec_errors({**pets, "attributes": write(attrs, tmp_path / "a2.csv")})
    assert errors[0][0] == "workload.params.attributes" and "'kind'" in errors[0][1]


def test_duplicate_class_rows(tmp_path: Path, pets: dict[str, str]) -> None:
    attrs = pd.concat([attributes_frame(), attributes_frame().iloc[[1]]])
    errors = spec_errors({**pets, "attributes": write(attrs, tmp_path / "dup.csv")})
    assert errors[0][0] == "workload.params.attributes" and "dog" in errors[0][1] and "one row" in errors[0][1]


def test_non_numeric_attribute_column(tmp_path: Path, pets: dict[str, str]) -> None:
    attrs = attributes_frame().assign(colour=["black", "brown", "gold"])
    errors = spec_errors({**pets, "attributes": write(attrs, tmp_path / "col.csv")})
    assert errors[0][0] == "workload.params.attributes" and "colour" in errors[0][1]


def test_non_numeric_feature_column(tmp_path: Path, pets: dict[str, str]) -> None:
    frame = pets_frame().assign(name=lambda f: [f"pet{i}" for i in range(len(f))])
    params = {**pets, "data": write(frame, tmp_path / "names.csv")}
    errors = spec_errors(params)
    assert errors[0][0] == "workload.params.data" and "'name'" in errors[0][1] and "not numeric" in errors[0][1]
    # listing only numeric columns as features is the way out
    assert parse_spec(spec_dict({**params, "features": ["a", "b"]})).workload.params["features"] == ["a", "b"]


def test_empty_feature_cells(tmp_path: Path, pets: dict[str, str]) -> None:
    frame = pets_frame()
    frame.loc[3, "b"] = np.nan
    errors = spec_errors({**pets, "data": write(frame, tmp_path / "holes.csv")})
    assert errors[0][0] == "workload.params.data" and "'b'" in errors[0][1] and "empty" in errors[0][1]


def test_attribute_scores_outside_unit_interval_need_mse(tmp_path: Path, pets: dict[str, str]) -> None:
    attrs = attributes_frame().assign(weight_kg=[4.0, 30.0, 0.1])
    params = {**pets, "attributes": write(attrs, tmp_path / "kg.csv")}
    errors = spec_errors(params, [("furry", "bce"), ("weight_kg", "bce")])
    assert len(errors) == 1
    field, message = errors[0]
    assert field == "aux_tasks.1.loss"
    assert "rescale" in message and "mse" in message and "weight_kg" in message
    spec = parse_spec(spec_dict(params, [("furry", "bce"), ("weight_kg", "mse")]))
    assert spec.aux_tasks[1].loss == "mse"


def test_unknown_aux_task_and_unknown_param(pets: dict[str, str]) -> None:
    errors = spec_errors(pets, [("whiskers", "bce")])
    assert errors[0][0] == "aux_tasks.0.name" and "furry" in errors[0][1]
    errors = spec_errors({**pets, "lable": "kind"})
    assert errors[0][0] == "workload.params.lable" and "label" in errors[0][1]


def test_one_class_only(tmp_path: Path, pets: dict[str, str]) -> None:
    frame = pets_frame().assign(kind="cat")
    errors = spec_errors({**pets, "data": write(frame, tmp_path / "cats.csv")})
    assert errors[0][0] == "workload.params.label" and "one class" in errors[0][1]


def test_too_few_rows(tmp_path: Path, pets: dict[str, str]) -> None:
    frame = pets_frame().iloc[:3]
    errors = spec_errors({**pets, "data": write(frame, tmp_path / "tiny.csv")})
    assert errors[0][0] == "workload.params.data" and "rows" in errors[0][1]


# -- end to end ----------------------------------------------------------------------------------------------


def test_short_trial_completes(pets: dict[str, str]) -> None:
    spec = parse_spec(spec_dict(pets, [("furry", "bce"), ("big", "bce"), ("score", "mse")],
                                training={"epochs": 3, "batch_size": 16, "lr": 0.01, "device": "cpu"}))
    prep = prepare(spec)
    assert prep.data.input_shape == (3,)
    result = run_trial(prep, spec.default_lambdas(), seed=0)
    assert result.status == "complete", result.reason
    assert result.sanity is not None and result.sanity.passed
    assert len(result.epochs) == 3 and result.test_accuracy is not None


def test_relative_paths_resolve_against_the_spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    write(pets_frame(), folder / "data.parquet")
    write(attributes_frame(), folder / "attributes.csv")
    (folder / "spec.yaml").write_text(
        "name: rel\nworkload: {name: table, params: {data: data.parquet, label: kind, attributes: attributes.csv}}\n"
        "aux_tasks: [{name: furry, loss: bce}]\n")
    monkeypatch.chdir(tmp_path)
    spec = load_spec(folder / "spec.yaml")
    assert Path(spec.workload.params["data"]) == (folder / "data.parquet").resolve()


# -- the shipped example -------------------------------------------------------------------------------------


def test_example_files_are_what_generate_py_writes() -> None:
    module_spec = importlib.util.spec_from_file_location("table_example_generate", EXAMPLE / "generate.py")
    assert module_spec is not None and module_spec.loader is not None
    generate = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(generate)
    rows, attributes = generate.generate()
    for name, expected in (("data.csv", rows), ("attributes.csv", attributes)):
        path = EXAMPLE / name
        assert path.stat().st_size < 100_000
        with path.open(newline="") as f:
            on_disk = list(csv.DictReader(f))
        assert on_disk == [{k: str(v) for k, v in row.items()} for row in expected], f"regenerate {name}"


def test_example_spec_runs_at_default_lambdas() -> None:
    spec = load_spec(EXAMPLE / "spec.yaml")
    assert spec.name == "table-demo" and spec.search.n_trials == 20
    assert all(t.loss == "bce" for t in spec.aux_tasks)
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"device": "cpu"})})
    prep = prepare(spec)
    assert prep.data.n_classes == 5 and prep.data.input_shape == (6,)
    result = run_trial(prep, spec.default_lambdas(), seed=0)
    assert result.sanity is not None and result.sanity.passed, result.sanity and result.sanity.reason
    assert result.status == "complete"
    assert result.val_accuracy is not None and result.val_accuracy > 0.6
