"""``search.params``: training params searched with the λ — their checks, the refusals of the algorithms that
cannot search them, and the spec a trial trains with."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import Field

import tuner.workloads
from tuner.search import make_backend
from tuner.spec import SpecError, parse_spec
from tuner.spec.params import param_key, searched_params, with_params
from tuner.spec.transfer import lambda_params
from tuner.workloads.synthetic import SyntheticParams, SyntheticWorkload

BASE: dict[str, Any] = {
    "name": "params-test",
    "workload": {"name": "synthetic"},
    "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
}
ISSUE_PARAMS = {"lr": {"low": 1e-4, "high": 1e-2, "log": True}, "weight_decay": {"low": 0, "high": 1e-3},
                "batch_size": {"choices": [32, 64, 128]}}


def spec_with(params: dict[str, Any], **search: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["search"] = {"params": params, **search}
    return doc


def errors_of(doc: dict[str, Any], backend: bool = False) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        spec = parse_spec(doc)
        if backend:
            make_backend(spec)
    return dict(info.value.errors)


def test_the_issue_example_is_searched_as_optuna_distributions_next_to_the_lambdas() -> None:
    spec = parse_spec(spec_with(ISSUE_PARAMS, algorithm="tpe"))
    space = make_backend(spec).search_space()
    assert set(space) == {"helpful", "harmful", "param.lr", "param.weight_decay", "param.batch_size"}
    assert space["param.lr"] == FloatDistribution(1e-4, 1e-2, log=True)
    assert space["param.batch_size"] == CategoricalDistribution([32, 64, 128])
    int_range = parse_spec(spec_with({"hidden": {"low": 16, "high": 64}}))
    assert make_backend(int_range).search_space()["param.hidden"] == IntDistribution(16, 64)


def test_a_study_without_params_keeps_its_document() -> None:
    assert "params" not in parse_spec(BASE).model_dump(by_alias=True)["search"]


@pytest.mark.parametrize(("params", "needle"), [
    ({"dropout": {"low": 0, "high": 0.5}}, "allowed: ['lr', 'weight_decay', 'batch_size', 'hidden']"),
    ({"lr": {"low": 1e-4, "high": 1e7}}, "training.lr"),
    ({"batch_size": {"choices": [32, 48.5]}}, "takes integers"),
    ({"weight_decay": {"low": 0, "high": 1e6}}, "training.weight_decay"),
])
def test_unknown_or_out_of_bounds_params_are_refused_naming_the_field(params: dict[str, Any], needle: str) -> None:
    name = next(iter(params))
    errors = errors_of(spec_with(params))
    assert needle in errors[f"search.params.{name}"], errors


@pytest.mark.parametrize("shape", [{"low": 1e-3}, {"low": 1e-3, "high": 1e-2, "choices": [1e-3]},
                                   {"low": 0, "high": 1e-2, "log": True}, {"choices": [1, 1]}, {"choices": []}])
def test_a_malformed_range_is_refused(shape: dict[str, Any]) -> None:
    errors = errors_of(spec_with({"lr": shape}))
    assert any(k.startswith("search.params.lr") for k in errors), errors


@pytest.mark.parametrize(("algorithm", "params", "field", "needle"), [
    ("cmaes", {"batch_size": {"choices": [32, 64]}}, "search.params.batch_size", "cannot search choices"),
    ("ax", {"lr": {"low": 1e-4, "high": 1e-2}}, "search.params.lr", "searches the λ only"),
    ("grid", {"lr": {"low": 1e-4, "high": 1e-2}}, "search.params.lr", "choices only"),
])
def test_an_algorithm_that_cannot_search_a_param_refuses_it(algorithm: str, params: dict[str, Any], field: str,
                                                            needle: str) -> None:
    assert needle in errors_of(spec_with(params, algorithm=algorithm), backend=True)[field]


def test_a_population_refuses_params() -> None:
    doc = spec_with({"lr": {"low": 1e-4, "high": 1e-2}})
    doc["population"] = {"size": 4}
    assert "population.size" in errors_of(doc, backend=True)["search.params"]


def test_grid_crosses_a_params_choices_with_the_lambda_grid() -> None:
    spec = parse_spec(spec_with({"batch_size": {"choices": [16, 32]}}, algorithm="grid", grid_points=2))
    backend = make_backend(spec)
    assert backend.grid()["param.batch_size"] == [16, 32] and backend.grid_size() == 2 * 2 * 2


def test_a_trials_params_set_its_training_fields_and_stay_out_of_its_lambdas() -> None:
    spec = parse_spec(spec_with(ISSUE_PARAMS))
    stored = {"helpful": 0.5, "harmful": 0.0, param_key("lr"): 3e-3, param_key("batch_size"): 128}
    assert lambda_params(stored) == {"helpful": 0.5, "harmful": 0.0}
    trial_spec = with_params(spec, searched_params(stored))
    assert (trial_spec.training.lr, trial_spec.training.batch_size) == (3e-3, 128)
    assert spec.training.batch_size == 64 and with_params(spec, {}) is spec


class WideParams(SyntheticParams):
    width: int = Field(32, ge=8, le=256)


class WideSynthetic(SyntheticWorkload):
    """The synthetic workload with a searchable model param of its own."""

    name = "synthetic-wide"
    params_model = WideParams
    model_params = {"width": "int"}


@pytest.fixture
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuner.workloads, "_plugins", lambda: {WideSynthetic.name: WideSynthetic})


@pytest.mark.usefixtures("_wide")
def test_a_workloads_own_model_param_is_searched_checked_and_reaches_the_workload() -> None:
    doc = spec_with({"width": {"low": 16, "high": 64}, "lr": {"low": 1e-3, "high": 1e-2}})
    doc["workload"] = {"name": WideSynthetic.name}
    spec = parse_spec(doc)
    assert make_backend(spec).search_space()["param.width"] == IntDistribution(16, 64)
    trial_spec = with_params(spec, {"width": 48, "lr": 2e-3})
    assert trial_spec.workload.params == {"width": 48} and trial_spec.training.lr == 2e-3
    doc["search"]["params"]["width"] = {"low": 16, "high": 1024}
    assert "1024" in errors_of(doc)["search.params.width"]
    doc["search"]["params"] = {"depth": {"choices": [1, 2]}}
    assert "allowed: ['lr', 'weight_decay', 'batch_size', 'hidden', 'width']" in errors_of(doc)["search.params.depth"]
