"""The ``table`` workload's target domain: a second file of the same features, the ``domain`` aux task with loss
``mmd``, target metrics when that file has labels, and a λ_mmd that adapts to a generated covariate shift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from storage import Store
from tests.tuner.engine.test_domain import assert_mmd_adapts
from tuner.engine.prepared import prepare
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.spec import SpecError, parse_spec
from tuner.workloads import WorkloadError, make_workload

NUISANCE = 8


def shifted_frame(n: int, seed: int, shift: float, labelled: bool = True) -> pd.DataFrame:
    """Three classes on a circle in (f0, f1), plus ``NUISANCE`` noise columns whose mean is ``shift``: the
    target domain moves the noise, which a source-trained net has no reason to ignore."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    cols: dict[str, Any] = {"f0": 2 * np.cos(2 * np.pi * y / 3) + 0.8 * rng.normal(size=n),
                            "f1": 2 * np.sin(2 * np.pi * y / 3) + 0.8 * rng.normal(size=n)}
    cols.update({f"n{i}": rng.normal(size=n) + shift for i in range(NUISANCE)})
    if labelled:
        cols["kind"] = [f"c{v}" for v in y]
    return pd.DataFrame(cols)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {"data": tmp_path / "source.csv", "target": tmp_path / "target.csv",
             "unlabelled": tmp_path / "unlabelled.parquet"}
    shifted_frame(150, 0, 0.0).to_csv(paths["data"], index=False)
    shifted_frame(400, 1, 3.0).to_csv(paths["target"], index=False)
    shifted_frame(100, 2, 3.0, labelled=False).to_parquet(paths["unlabelled"], index=False)
    return {k: str(v) for k, v in paths.items()}


def doc(data: str, target: str | None, objective: str = "target_val_accuracy", epochs: int = 15,
        **params: Any) -> dict[str, Any]:
    return {"name": "table-mmd",
            "workload": {"name": "table", "params": {"data": data, "label": "kind", "target_data": target, **params}},
            "aux_tasks": [{"name": "domain", "loss": "mmd", "lambda": {"low": 0.0, "high": 1.0}}],
            "search": {"algorithm": "random", "n_trials": 3, "seed": 0},
            "training": {"epochs": epochs, "batch_size": 32, "lr": 0.003}, "objective": {"metric": objective}}


def test_target_rows_are_split_and_standardised_like_the_source(files: dict[str, str]) -> None:
    prep = prepare(parse_spec(doc(files["data"], files["target"])), "cpu")
    target = prep.data.target
    assert target is not None and target.val is not None and target.test is not None
    assert (len(target.train), len(target.val), len(target.test)) == (240, 80, 80)  # 20 % val, 20 % test
    raw = pd.read_csv(files["data"])
    train_rows = raw.iloc[torch.randperm(150, generator=torch.Generator().manual_seed(0))[:90].numpy()]
    mean, std = train_rows["n0"].mean(), train_rows["n0"].std()
    whole = torch.cat([target.train.x, target.val.x, target.test.x])
    expected = (pd.read_csv(files["target"])["n0"].to_numpy() - mean) / std
    assert sorted(whole[:, 2].tolist()) == pytest.approx(sorted(expected.tolist()), abs=1e-4)  # the shift survives
    assert float(whole[:, 2].mean()) > 2.0 and abs(float(prep.data.train.x[:, 2].mean())) < 1e-4
    assert prep.data.tasks["domain"].kind == "domain"

    unlabelled = make_workload("table", {"data": files["data"], "label": "kind",
                                         "target_data": files["unlabelled"]})
    assert "domain" in unlabelled.describe_tasks() and not unlabelled.target_labelled()
    built = unlabelled.build(["domain"]).target
    assert built is not None and len(built.train) == 100 and built.val is None and built.test is None


def test_a_study_on_the_target_metric_runs_and_stores_target_metrics(files: dict[str, str], tmp_path: Path) -> None:
    spec = parse_spec(doc(files["data"], files["target"], epochs=3))
    with Store(f"sqlite:///{tmp_path / 'mmd.db'}") as store:
        study = create_or_resume(store, spec)
        Worker(store, config=WorkerConfig(heartbeat_s=30)).run([spec.name])
        trials = store.trials(study.id)
        assert [t.state for t in trials] == ["complete"] * 3
        for t in trials:
            result = t.result or {}
            best = next(e for e in result["epochs"] if e["epoch"] == result["best_epoch"])
            assert t.value == best["target"]["accuracy"] and 0.0 <= t.value <= 1.0
            assert set(result["target_test"]) == {"accuracy", "loss"}
            assert "domain" in best["val_loss"]  # the mmd term was measured


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"target": "missing.csv"}, "workload.params.target_data", "file not found"),
    ({"drop": ["n3"], "features": ["f0", "f1", "n3"]}, "workload.params.target_data", "['n3'] are not in"),
    ({"text": "n1"}, "workload.params.target_data", "not numeric"),
    ({"classes": True}, "workload.params.target_data", "are not classes of"),
    ({"unlabelled": True}, "objective", "need target-domain labels"),
    ({"domain_column": True}, "workload.params.target_data", "column named 'domain'"),
])
def test_bad_target_files_name_the_param(files: dict[str, str], tmp_path: Path, change: dict[str, Any], field: str,
                                         words: str) -> None:
    target = pd.read_csv(files["target"])
    data = files["data"]
    params: dict[str, Any] = {}
    if "drop" in change:
        target = target.drop(columns=change["drop"])
        params["features"] = change["features"]
    if "text" in change:
        target[change["text"]] = "high"
    if "classes" in change:
        target.loc[0, "kind"] = "c9"
    if "unlabelled" in change:
        target = target.drop(columns=["kind"])
    if "domain_column" in change:
        data = str(tmp_path / "with-domain.csv")
        pd.read_csv(files["data"]).assign(domain=1.0).to_csv(data, index=False)
    path = str(tmp_path / change.get("target", "bad-target.csv"))
    if "target" not in change:
        target.to_csv(path, index=False)
    with pytest.raises(SpecError) as info:
        parse_spec(doc(data, path, **params))
    errors = dict(info.value.errors)
    assert words in errors[field], errors


def test_a_default_feature_missing_from_the_target_fails_the_build_naming_the_param(files: dict[str, str],
                                                                                   tmp_path: Path) -> None:
    path = str(tmp_path / "narrow.csv")
    pd.read_csv(files["target"]).drop(columns=["n5"]).to_csv(path, index=False)
    workload = make_workload("table", {"data": files["data"], "label": "kind", "target_data": path})
    with pytest.raises(WorkloadError) as info:
        workload.build(["domain"])
    assert info.value.field == "workload.params.target_data" and "['n5'] are not in" in info.value.message


def test_best_lambda_mmd_improves_target_accuracy_over_zero(files: dict[str, str]) -> None:
    """Pick λ_mmd by target validation accuracy on seed 0, then compare on the target *test* split over fresh
    seeds: the adapted model must beat λ_mmd = 0 there (measured: ~0.74 → ~0.89)."""
    assert_mmd_adapts(prepare(parse_spec(doc(files["data"], files["target"])), "cpu"), (0.0, 0.1, 0.3, 0.6))
