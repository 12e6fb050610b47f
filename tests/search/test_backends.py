"""Every backend: search space, bounds, fixed λ, controls, budget; the grid's coverage."""

from __future__ import annotations

import itertools
import math
from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution

from tests.search.factories import THIRD_PARTY_WARNINGS, in_bounds, make_spec, new_study, run_rounds
from tuner.search import BACKENDS, CONTROL_ATTR, CmaEsBackend, GridBackend, make_backend
from tuner.spec import ALGORITHMS, SpecError

pytestmark = THIRD_PARTY_WARNINGS


def test_every_algorithm_has_a_backend() -> None:
    assert set(BACKENDS) == set(ALGORITHMS)
    for algorithm in ALGORITHMS:
        backend = make_backend(make_spec(algorithm))
        assert backend.algorithm == algorithm
        assert isinstance(backend.sampler(), optuna.samplers.BaseSampler)


def test_unknown_algorithm_is_refused() -> None:
    spec = make_spec()
    spec.search.algorithm = "annealing"  # type: ignore[assignment]
    with pytest.raises(SpecError, match="search.algorithm"):
        make_backend(spec)


def test_missing_package_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CmaEsBackend, "requires", ("no_such_module_for_auxtune",))
    with pytest.raises(SpecError, match="pip install no_such_module_for_auxtune") as err:
        make_backend(make_spec("cmaes"))
    assert err.value.errors[0][0] == "search.algorithm"


def test_all_fixed_lambdas_are_refused() -> None:
    spec = make_spec(tasks={"c": {"fixed": 0.3}, "d": {"low": 0.7, "high": 0.7}})
    with pytest.raises(SpecError, match="no λ to search") as err:
        make_backend(spec)
    assert err.value.errors[0][0] == "aux_tasks"


def test_search_space_has_searched_lambdas_only() -> None:
    spec = make_spec(tasks={"a": {"low": 1e-3, "high": 10.0, "log": True}, "b": {}, "c": {"fixed": 0.3},
                            "d": {"low": 0.7, "high": 0.7}})
    space = make_backend(spec).search_space()
    assert space == {"a": FloatDistribution(1e-3, 10.0, log=True), "b": FloatDistribution(0.0, 2.0)}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_small_study_stays_in_bounds_and_fills_fixed(algorithm: str) -> None:
    backend = make_backend(make_spec(algorithm, seed=3))
    study = new_study(backend)
    rounds = min(10, backend.max_trials())
    lambdas = run_rounds(backend, study, rounds)
    assert len(study.trials) == rounds
    for lam in lambdas:
        assert set(lam) == {"a", "b", "c", "d"}
        assert in_bounds(backend.spec, lam)
        assert lam["c"] == 0.3 and lam["d"] == 0.7
    assert lambdas[:2] == [{"a": 0.0, "b": 0.0, "c": 0.3, "d": 0.7}, {"a": 1.0, "b": 1.0, "c": 0.3, "d": 0.7}]
    # after the controls the sampler proposes something new
    assert len({(lam["a"], lam["b"]) for lam in lambdas}) == rounds


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_log_scale_sampling_stays_in_bounds(algorithm: str) -> None:
    spec = make_spec(algorithm, tasks={"a": {"low": 1e-3, "high": 10.0, "log": True},
                                       "b": {"low": 0.05, "high": 0.5, "log": True}})
    backend = make_backend(spec)
    study = new_study(backend)
    lambdas = run_rounds(backend, study, min(8, backend.max_trials()))
    assert all(in_bounds(spec, lam) for lam in lambdas)
    # the controls are clipped into the log bounds
    assert lambdas[0] == {"a": 1e-3, "b": 0.05}
    assert lambdas[1] == {"a": 1.0, "b": 0.5}


def test_controls_are_enqueued_first_tagged_and_once() -> None:
    backend = make_backend(make_spec("random", n_trials=5))
    assert backend.controls() == [{"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 1.0}]
    study = new_study(backend)
    backend.enqueue_controls(study)  # a rerun adds nothing
    assert len(study.get_trials(states=(optuna.trial.TrialState.WAITING,))) == 2
    run_rounds(backend, study, backend.max_trials())
    trials = study.trials
    assert len(trials) == 5  # controls count towards n_trials
    assert [t.user_attrs.get(CONTROL_ATTR) for t in trials] == ["baseline", "equal", None, None, None]
    assert [t.params for t in trials[:2]] == backend.controls()


def test_controls_off() -> None:
    backend = make_backend(make_spec("random", controls=False))
    assert backend.controls() == []
    study = new_study(backend)
    assert study.trials == []
    lambdas = run_rounds(backend, study, 2)
    assert {"a": 0.0, "b": 0.0, "c": 0.3, "d": 0.7} not in lambdas


def test_controls_are_clipped_and_deduplicated() -> None:
    backend = make_backend(make_spec("random", tasks={"a": {"low": 0.1, "high": 0.5}, "b": {}}))
    assert backend.controls() == [{"a": 0.1, "b": 0.0}, {"a": 0.5, "b": 1.0}]
    backend = make_backend(make_spec("random", tasks={"a": {"low": 1.0, "high": 3.0}, "b": {"low": 1.0, "high": 2}}))
    assert backend.controls() == [{"a": 1.0, "b": 1.0}]


def test_lambdas_of_a_frozen_trial() -> None:
    backend = make_backend(make_spec("random"))
    study = new_study(backend)
    run_rounds(backend, study, 3)
    frozen = study.trials[2]
    assert backend.lambdas_of(frozen) == {"a": frozen.params["a"], "b": frozen.params["b"], "c": 0.3, "d": 0.7}


def test_streams_give_different_random_proposals() -> None:
    backend = make_backend(make_spec("tpe", controls=False))
    first = []
    for stream in (0, 1):
        study = optuna.create_study(direction="maximize", sampler=backend.sampler(stream))
        first.append(backend.ask(study).params)
    assert first[0] != first[1]


def test_cmaes_samples_one_lambda_relatively() -> None:
    backend = make_backend(make_spec("cmaes", tasks={"a": {}, "c": {"fixed": 0.3}}, controls=False, seed=1))
    study = optuna.create_study(direction="maximize", sampler=backend.sampler())
    for _ in range(10):
        trial = backend.ask(study)
        study.tell(trial, -((trial.params["a"] - 1.5) ** 2))
    # trial 0 is the random start-up trial; the rest come from a 1-D CMA-ES
    assert all("cma:generation" in t.system_attrs for t in study.trials[1:])
    assert all(0.0 <= t.params["a"] <= 2.0 for t in study.trials)


# -- grid -------------------------------------------------------------------------------------------------------
def test_grid_values_linear_and_log() -> None:
    spec = make_spec("grid", tasks={"a": {}, "b": {"low": 0.01, "high": 1.0, "log": True}})
    grid = GridBackend(spec).grid()
    assert grid["a"] == [0.0, 1.0, 2.0]
    assert grid["b"][0] == 0.01 and grid["b"][2] == 1.0 and math.isclose(grid["b"][1], 0.1)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ({}, 9),  # both controls lie on the 3×3 grid
        ({"grid_points": 2}, 5),  # λ=0 is on the {0, 2}² grid, λ=1 is one extra trial
        ({"grid_points": 2, "controls": False}, 4),
        ({"n_trials": 4}, 4),
    ],
)
def test_grid_max_trials(search: dict[str, Any], expected: int) -> None:
    assert make_backend(make_spec("grid", tasks={"a": {}, "b": {}}, **search)).max_trials() == expected


@pytest.mark.parametrize("grid_points", [2, 3])
def test_grid_covers_its_grid_once(grid_points: int) -> None:
    backend = make_backend(make_spec("grid", tasks={"a": {}, "b": {}}, grid_points=grid_points))
    study = new_study(backend)
    lambdas = run_rounds(backend, study, backend.max_trials())
    seen = [(lam["a"], lam["b"]) for lam in lambdas]
    grid = GridBackend(backend.spec).grid()
    points = set(itertools.product(grid["a"], grid["b"]))
    assert len(seen) == len(set(seen))  # nothing ran twice
    assert points <= set(seen)
    assert seen[:2] == [(0.0, 0.0), (1.0, 1.0)]
    assert set(seen) - points <= {(1.0, 1.0)}  # only an off-grid control is extra


def test_grid_exhausted_keeps_answering() -> None:
    backend = make_backend(make_spec("grid", tasks={"a": {}, "b": {"fixed": 0.2}}, grid_points=2, controls=False))
    study = new_study(backend)
    lambdas = run_rounds(backend, study, backend.max_trials() + 1)  # GridSampler would call study.stop() here
    assert {lam["a"] for lam in lambdas} == {0.0, 2.0}
