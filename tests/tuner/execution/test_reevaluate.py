"""``search.reevaluate`` (issue #18): leading λ sets run again on their own seeds during the search, inside
``n_trials``, and the answer is the best mean over a λ set's evaluations. A real worker on a real SQLite file."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from storage import Store
from tuner.analysis.documents import best_document
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.search import REEVALUATES_ATTR, make_backend
from tuner.spec import SpecError, parse_spec

N_TRIALS = 14


def reevaluated_doc(**search: object) -> dict:
    return {
        "name": "noisy",
        "workload": {"name": "synthetic", "params": {"n_train": 48, "n_val": 48, "n_test": 48}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
        "search": {"algorithm": "random", "n_trials": N_TRIALS, "seed": 0,
                   "reevaluate": {"top_k": 2, "seeds": 3}, **search},
        "training": {"epochs": 1, "batch_size": 32},
        "sanity": {"enabled": False},
        "affinity": {"every": 0},
    }


def test_leading_lambda_sets_are_reevaluated_and_ranked_by_their_mean(tmp_path: Path) -> None:
    doc = reevaluated_doc()
    with Store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        create_or_resume(store, parse_spec(doc))
        Worker(store, config=WorkerConfig(lease_timeout_s=60, heartbeat_s=5)).run(["noisy"])
        study = store.get_study("noisy")
        rows = store.trials(study.id)
        assert len(rows) == N_TRIALS and all(t.state == "complete" for t in rows)  # inside the budget
        frozen = {t.number: t for t in store.optuna_study(study).get_trials(deepcopy=False)}
        again = {n: int(t.user_attrs[REEVALUATES_ATTR]) for n, t in frozen.items() if REEVALUATES_ATTR in t.user_attrs}
        assert 2 <= len(again) <= N_TRIALS // 2
        by_number = {t.number: t for t in rows}
        for number, of in again.items():  # the same λ as the trial it repeats, on its own (later) seed
            assert of < number and by_number[number].params == by_number[of].params
            assert not frozen[of].user_attrs.get(REEVALUATES_ATTR)
        groups: dict[str, list[float]] = {}
        for t in rows:
            groups.setdefault(repr(sorted(t.params.items())), []).append(float(t.value or 0.0))
        assert max(len(v) for v in groups.values()) == 3  # a leader got its 3 evaluations, no more
        best_mean = max(statistics.fmean(v) for v in groups.values())
        best = best_document(store, study)
        assert best is not None and best["value"] == pytest.approx(best_mean)
        evaluations = best["evaluations"]
        assert evaluations["n"] == len(evaluations["trials"]) == len(evaluations["values"])
        assert statistics.fmean(evaluations["values"]) == pytest.approx(best_mean)
        assert best["trial"] == min(evaluations["trials"])
        assert {by_number[n].value for n in evaluations["trials"]} <= set(evaluations["values"])


def test_reevaluate_is_bounded_and_single_objective_only() -> None:
    for bad in ({"top_k": 0, "seeds": 3}, {"top_k": 2, "seeds": 1}, {"top_k": 2, "seeds": 10**6},
                {"top_k": 2, "seeds": 3, "extra": 1}):
        with pytest.raises(SpecError) as err:
            parse_spec(reevaluated_doc(reevaluate=bad))
        assert "search.reevaluate" in str(err.value)
    doc = reevaluated_doc()
    doc["objective"] = [{"metric": "val_accuracy"}, {"metric": "train_seconds"}]
    with pytest.raises(SpecError, match="search.reevaluate"):
        make_backend(parse_spec(doc))
    plain = reevaluated_doc()
    del plain["search"]["reevaluate"]
    assert "reevaluate" not in parse_spec(plain).model_dump(mode="json")["search"]  # old digests unchanged
