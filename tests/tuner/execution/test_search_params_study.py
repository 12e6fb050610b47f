"""A real small study with ``search.params`` (lr and batch_size searched with the λ): a real SQLite store, an
in-process worker, and the confirmation it runs after the search."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from api.dashboard.payloads import study_state, trials_page
from api.dashboard.snapshot import SnapshotCache
from api.schemas import BestPublic
from storage import Store
from tuner.analysis.confirm import TRAIN_PARAMS_PARAM
from tuner.analysis.documents import best_document
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.spec import parse_spec
from tuner.spec.params import searched_params, with_params
from tuner.spec.transfer import lambda_params

sys.path.insert(0, str(Path(__file__).parent))
from test_study_run import _run_in_process, auxtune, spec_dict  # noqa: E402


@pytest.fixture(scope="module")
def searched_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, dict]:
    doc = spec_dict("searched-params", n_trials=5, epochs=1, algorithm="tpe")
    doc["search"]["params"] = {"lr": {"low": 1e-3, "high": 3e-2, "log": True}, "batch_size": {"choices": [8, 32]}}
    doc["sanity"] = {"enabled": False}
    doc["confirm"] = {"seeds": 2, "resample_splits": False}
    url = f"sqlite:///{tmp_path_factory.mktemp('params') / 's.db'}"
    doc["url"] = url
    store = _run_in_process(url, {k: v for k, v in doc.items() if k != "url"})
    return store, doc


def test_each_trial_trains_with_its_own_searched_params(searched_study: tuple[Store, dict]) -> None:
    store, doc = searched_study
    study = store.get_study(doc["name"])
    rows = [t for t in store.trials(study.id) if t.state == "complete"]
    assert len(rows) == 5
    assert len({t.params["param.lr"] for t in rows}) == 5 and {t.params["param.batch_size"] for t in rows} <= {8, 32}
    spec = parse_spec({k: v for k, v in doc.items() if k != "url"})
    base = prepare(spec, "cpu")
    for row in rows[:2]:  # retrained here at the trial's params: the stored value again; at the spec's: another
        lambdas, seed = lambda_params(row.params), spec.training.seed + row.number
        own = dataclasses.replace(base, spec=with_params(spec, searched_params(row.params)))
        assert row.result is not None
        stored = row.result["epochs"][-1]["train_loss"]["total"]
        assert run_trial(own, lambdas, seed=seed).epochs[-1].train_loss["total"] == pytest.approx(stored, rel=1e-6)
        assert run_trial(base, lambdas, seed=seed).epochs[-1].train_loss["total"] != pytest.approx(stored, rel=1e-6)


def test_best_shows_params_beside_lambdas_and_the_confirmation_trains_at_them(
        searched_study: tuple[Store, dict]) -> None:
    store, doc = searched_study
    study = store.get_study(doc["name"])
    best = best_document(store, study)
    assert best is not None and set(best["lambdas"]) == {"helpful", "harmful"}
    top = next(t for t in store.trials(study.id) if t.number == best["trial"])
    assert best["params"] == searched_params(top.params) and set(best["params"]) == {"lr", "batch_size"}
    assert BestPublic.model_validate(best).model_dump(exclude_none=True)["params"] == best["params"]  # /best
    cli = auxtune("best", doc["name"], "--db", doc["url"], "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["params"] == best["params"]
    runs = sorted(store.runs(study.id), key=lambda r: r.arm)  # baseline, then best (the best non-baseline λ set)
    assert {r.arm for r in runs} == {"baseline", "best"} and all(r.state == "complete" for r in runs)
    best_arm = searched_params(next(t for t in store.trials(study.id) if t.number == runs[-1].trial_number).params)
    assert all(r.params[TRAIN_PARAMS_PARAM] == best_arm for r in runs), ([r.params for r in runs], best)


def test_the_dashboard_shows_params_in_the_best_panel_and_the_trial_table(
        searched_study: tuple[Store, dict]) -> None:
    store, doc = searched_study
    study = store.get_study(doc["name"])
    snapshot = SnapshotCache().get(store, study)
    state = study_state(snapshot)
    assert set(state["best"]["lambdas"]) == {"helpful", "harmful"} and set(state["best"]["params"]) == {"lr",
                                                                                                         "batch_size"}
    page = trials_page(snapshot, store, sort="lambda:param.lr")
    assert page["lambda_names"] == ["helpful", "harmful", "param.lr", "param.batch_size"]
    lrs = [r["lambdas"]["param.lr"] for r in page["data"]]
    assert lrs == sorted(lrs) and len(lrs) == 5


def test_a_study_without_params_shows_none() -> None:
    assert "params" not in parse_spec(spec_dict("plain", n_trials=2)).model_dump()["search"]
