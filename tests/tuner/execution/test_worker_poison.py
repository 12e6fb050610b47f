"""A study that cannot be built on a worker (a poison spec) fails with its reason; the worker goes on.

The poison specs are written straight into the store, as a worker of another version (or an older server)
would find them: the API's validation never sees them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storage import RunPlan, Store
from tests.tuner.execution.test_study_run import spec_dict, worker_proc
from tuner.execution.submit import create_or_resume
from tuner.spec import parse_spec

POISONS: dict[str, dict[str, Any]] = {
    # a plugin workload this worker does not have
    "unknown-workload": {"workload": {"name": "no-such-plugin-workload", "params": {}}},
    # a workload parameter this worker's version lacks
    "future-param": {"workload": {"name": "synthetic", "params": {"n_train": 64, "from_the_future": 3}}},
    # a stored spec that no longer parses
    "unparsable": {"search": {"algorithm": "random", "n_trials": "many", "seed": 0}},
}


def _store_poison(store: Store, name: str) -> int:
    doc = {**spec_dict(name, n_trials=3), **POISONS[name]}
    return store.create_or_resume_study(name, doc, ["maximize"], 3).id


def _run_worker(url: str, studies: list[str], *extra: str) -> str:
    proc = worker_proc(url, studies[0], None, 10.0, *[a for s in studies[1:] for a in ("--study", s)], *extra)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    return out


@pytest.mark.parametrize("population", [None, "2"])
def test_poison_studies_fail_with_a_reason_and_the_worker_finishes_the_healthy_one(
    tmp_path: Path, population: str | None
) -> None:
    url = f"sqlite:///{tmp_path / 'poison.db'}"
    with Store(url) as store:
        healthy = create_or_resume(store, parse_spec(spec_dict("healthy", n_trials=4)))
        poisons = {name: _store_poison(store, name) for name in POISONS}
        # the poison studies first: a worker meets them before the healthy one
        _run_worker(url, [*poisons, "healthy"], *(["--population", population] if population else []))
        for name, study_id in poisons.items():
            study = store.get_study(study_id)
            assert study.status == "failed", (name, study.status)
            assert "cannot be built on worker" in study.status_reason, (name, study.status_reason)
        assert "no-such-plugin-workload" in store.get_study(poisons["unknown-workload"]).status_reason
        assert "from_the_future" in store.get_study(poisons["future-param"]).status_reason
        assert "n_trials" in store.get_study(poisons["unparsable"]).status_reason
        assert store.get_study(healthy.id).status == "done"
        rows = store.trials(healthy.id)
        assert len(rows) == 4 and all(t.state == "complete" for t in rows), [(t.state, t.reason) for t in rows]


def test_a_confirmation_run_of_a_study_that_no_longer_parses_fails_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with Store(url) as store:
        healthy = create_or_resume(store, parse_spec(spec_dict("healthy", n_trials=3)))
        study_id = _store_poison(store, "unparsable")
        assert store.transition_study(study_id, "done", ("queued",)) is not None
        store.enqueue_runs(study_id, [RunPlan(kind="lambda", arm="best", params={"helpful": 1.0, "harmful": 0.0},
                                              seed=0)])
        _run_worker(url, ["unparsable", "healthy"])
        [run] = store.runs(study_id)
        assert run.state == "failed" and "n_trials" in run.reason, (run.state, run.reason)
        assert store.get_study(healthy.id).status == "done"
        assert all(t.state == "complete" for t in store.trials(healthy.id))
