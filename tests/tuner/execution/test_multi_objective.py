"""Multi-objective (Pareto) studies: the spec, the search backends, and a real study whose stored front is checked
against every stored trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from storage import Store, dominates
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.results import EpochMetrics, TrialResult, trial_values
from tuner.search import AX_INIT_TRIALS, NSGA2Backend, make_backend
from tuner.spec import SpecError, parse_spec

TWO = [{"metric": "val_accuracy"}, {"metric": "val_loss:harmful"}]


def spec_doc(name: str = "pareto", objective: Any = TWO, **search: Any) -> dict[str, Any]:
    return {
        "name": name,
        "workload": {"name": "synthetic", "params": {"n_train": 96, "n_val": 96, "n_test": 96}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
        "search": {"algorithm": "nsga2", "n_trials": 10, "seed": 0, **search},
        "training": {"epochs": 2, "batch_size": 32, "lr": 0.003},
        "objective": objective,
    }


def errors_of(doc: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        make_backend(parse_spec(doc))
    return dict(info.value.errors)


def test_objective_list_is_primary_plus_also_and_stores_round_trip() -> None:
    spec = parse_spec(spec_doc(objective=[*TWO, {"metric": "train_seconds"}]))
    assert spec.objective.metrics() == ["val_accuracy", "val_loss:harmful", "train_seconds"]
    assert spec.objective.directions() == ["maximize", "minimize", "minimize"]
    stored = spec.model_dump(mode="json", by_alias=True)
    assert parse_spec(stored) == spec
    single = parse_spec(spec_doc(objective={"metric": "val_loss"})).model_dump(mode="json", by_alias=True)
    assert single["objective"] == {"metric": "val_loss", "direction": "minimize"}  # unchanged for old studies


@pytest.mark.parametrize(("objective", "field", "words"), [
    ([{"metric": "val_accuracy"}, {"metric": "val_loss:nope"}], "objective", "not an aux task"),
    ([{"metric": "val_accuracy"}, {"metric": "train_seconds", "direction": "maximize"}], "objective.also.0",
     "minimized"),
    ([{"metric": "val_accuracy"}, {"metric": "speed"}], "objective.also.0.metric", "unknown metric"),
    ([{"metric": "val_accuracy"}, {"metric": "val_accuracy"}], "objective", "more than once"),
])
def test_bad_objectives_name_the_field(objective: Any, field: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(spec_doc(objective=objective))
    assert words in dict(info.value.errors)[field]


def test_single_objective_samplers_and_pruners_are_refused_with_several_objectives() -> None:
    assert "nsga2" in errors_of(spec_doc(algorithm="cmaes"))["search.algorithm"]
    assert "none" in errors_of(spec_doc(pruner={"name": "median"}))["search.pruner.name"]
    backend = make_backend(parse_spec(spec_doc()))
    assert isinstance(backend, NSGA2Backend)
    assert isinstance(backend.sampler(), optuna.samplers.NSGAIISampler)
    for algorithm in ("tpe", "gp", "random", "nsga3", "ax"):
        make_backend(parse_spec(spec_doc(algorithm=algorithm)))  # accepted


def test_trial_values_read_the_best_epoch_and_refuse_non_finite() -> None:
    epochs = [EpochMetrics(epoch=e, train_loss={}, val_loss={"main": 1.0 - e / 10, "harmful": 0.5 + e}, val_accuracy=a,
                           seconds=0.1) for e, a in enumerate((0.6, 0.9, 0.7))]
    result = TrialResult(status="complete", lambdas={}, seed=0, metric="val_accuracy", direction="maximize",
                         value=0.9, best_epoch=1, epochs=epochs, seconds=3.5)
    assert trial_values(["val_accuracy", "val_loss:harmful", "train_seconds", "val_loss"], result) == [
        0.9, 1.5, 3.5, 0.9]
    epochs[1].val_loss["harmful"] = float("nan")
    with pytest.raises(ValueError, match="val_loss:harmful"):
        trial_values(["val_accuracy", "val_loss:harmful"], result)


@pytest.mark.parametrize(("algorithm", "n"), [("nsga2", 10), ("ax", AX_INIT_TRIALS + 1)])
def test_two_objective_study_stores_a_non_dominated_front(tmp_path: Path, algorithm: str, n: int) -> None:
    spec = parse_spec(spec_doc(algorithm=algorithm, n_trials=n))
    with Store(f"sqlite:///{tmp_path / 'pareto.db'}") as store:
        study = create_or_resume(store, spec)
        assert study.directions == ["maximize", "minimize"]
        Worker(store, config=WorkerConfig(heartbeat_s=30)).run([spec.name])
        trials = {t.number: t for t in store.trials(study.id)}
        assert len(trials) == n and all(t.state == "complete" for t in trials.values())
        front = store.pareto_front(study.id)

        # Independently of the store's code: every complete trial as Optuna's ledger holds it.
        stored = optuna.load_study(study_name=spec.name, storage=store.optuna_storage).trials
        values = {t.number: t.values for t in stored if t.state == optuna.trial.TrialState.COMPLETE}
        assert len(values) == n and all(len(v) == 2 for v in values.values())
        if algorithm == "ax":  # Ax was told both objectives of every trial, and its last λ came from its model
            last = stored[-1].system_attrs
            assert (last["ax:phase"], last["ax:observed"]) == ("bayesopt", n - 1)
            assert last["ax:objective"] == "val_accuracy, -val_loss_harmful"  # both, the second minimised
        for n, v in values.items():  # what the worker reported is read from the trial's own result
            result = trials[n].result or {}
            best = next(e for e in result["epochs"] if e["epoch"] == result["best_epoch"])
            assert v == [best["val_accuracy"], best["val_loss"]["harmful"]]
        on_front = {t.number for t in front}
        assert on_front
        for t in front:
            assert t.values == values[t.number]
            assert not any(dominates(w, t.values, study.directions) for w in values.values())
        for n in set(values) - on_front:
            assert any(dominates(values[m], values[n], study.directions) for m in on_front)
        # Progress lines and /best's 409 check read the best on the primary objective.
        top = store.best_trial(study.id)
        assert top is not None and top.value == max(v[0] for v in values.values())
