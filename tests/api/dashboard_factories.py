"""A study of any size in seconds, for the dashboard's tests and ``bench/dashboard_load.py``.

``populated_study`` writes what workers would have left (trial rows with λ, value, worker, timings, per-epoch
curves, sanity results, some sanity failures and pruned trials) straight into auxtune's tables with bulk
inserts: 10 000 trials take a few seconds instead of minutes of claims. Optuna's ledger is not filled (the
dashboard never reads it for a single-objective study). The value is a known function of λ (best near
helpful = 1.2, harmful = 0) plus noise, so the plots have something to show. With ``multi_objective`` the study
also minimises the harmful task's loss, which falls as λ_harmful grows (a trade-off with the accuracy): each
trial is written to Optuna's ledger too (its ``trials`` and ``trial_values``: what the front is read from).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from optuna.storages._rdb.models import TrialModel as OptunaTrialModel
from optuna.storages._rdb.models import TrialValueModel
from optuna.trial import TrialState
from sqlalchemy import insert, select

from storage import Store, StudyRecord
from storage.models import EpochModel, SanityModel, TrialModel

TASKS = ("helpful", "harmful")
SANITY_REASON = "total loss fell by {:.1%} in 40 steps (1.93 → 1.41); needs ≥ 50%"


def dashboard_spec(name: str, n_trials: int, epochs: int = 3) -> dict[str, Any]:
    """A stored-form spec (every default filled in, as ``tuner.execution.submit.spec_document`` writes it)."""
    lam = {"low": 0.0, "high": 2.0, "log": False, "fixed": None}
    return {
        "name": name, "workload": {"name": "synthetic", "params": {}},
        "aux_tasks": [{"name": t, "loss": "bce", "lambda": dict(lam), "temperature": 2.0} for t in TASKS]
        + [{"name": "neutral", "loss": "bce", "lambda": {**lam, "fixed": 0.25}, "temperature": 2.0}],
        "search": {"algorithm": "random", "n_trials": n_trials, "seed": 0, "controls": True},
        "training": {"epochs": epochs}, "objective": {"metric": "val_accuracy", "direction": "maximize"},
    }


def objective(lam: dict[str, float], rng: random.Random) -> float:
    return 0.9 - 0.05 * (lam["helpful"] - 1.2) ** 2 - 0.04 * lam["harmful"] ** 2 + rng.gauss(0, 0.004)


def harmful_loss(lam: dict[str, float], rng: random.Random) -> float:
    """The second objective of a multi-objective study (minimised): lower the more the harmful task is trained."""
    return 1.0 - 0.3 * lam["harmful"] + rng.gauss(0, 0.02)


OPTUNA_STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed_sanity": TrialState.FAIL,
                 "running": TrialState.RUNNING}


def populated_study(store: Store, name: str, n: int, *, epochs: int = 3, running: int = 0, seed: int = 0,
                    owner: str | None = None, multi_objective: bool = False) -> StudyRecord:
    """A study named ``name`` holding ``n`` finished trials (the λ = 0 and λ = 1 controls first; ~3 % fail the
    sanity gate, ~5 % pruned) and then ``running`` trials still running, written with bulk inserts; with
    ``multi_objective``, objectives (val_accuracy ↑, val_loss:harmful ↓), in Optuna's ledger too."""
    total = n + running
    spec = dashboard_spec(name, total, epochs)
    directions = ["maximize"]
    if multi_objective:
        spec["objective"]["also"] = [{"metric": "val_loss:harmful", "direction": "minimize"}]
        directions.append("minimize")
    study = store.create_or_resume_study(name, spec, directions, total, owner=owner)
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    trials, outcomes = [], {}
    for number in range(total):
        lam = ({t: 0.0 for t in TASKS} if number == 0 else {t: 1.0 for t in TASKS} if number == 1
               else {t: rng.uniform(0.0, 2.0) for t in TASKS})
        state = "running" if number >= n else ("failed_sanity" if number > 1 and rng.random() < 0.03 else
                                              "pruned" if number > 1 and rng.random() < 0.05 else "complete")
        began = start + timedelta(seconds=10 * number)
        outcomes[number] = (state, objective(lam, rng))
        trials.append({
            "study_id": study.id, "number": number, "optuna_trial_id": 1_000_000_000 + study.id * 100_000 + number,
            "params": lam, "state": state, "attempt": 1, "worker_id": f"w{number % 4}", "started_at": began,
            "finished_at": None if state == "running" else began + timedelta(seconds=8 + rng.random() * 4),
            "value": outcomes[number][1] if state == "complete" else None, "created_at": began, "updated_at": began,
            "reason": "sanity gate: " + SANITY_REASON.format(rng.random() / 2) if state == "failed_sanity" else "",
            "heartbeat_at": began if state == "running" else None, "result": None,
        })
    second = {number: harmful_loss(trials[number]["params"], rng) for number in outcomes} if multi_objective else {}
    with store.session("populating a study") as session:
        if multi_objective:  # Optuna's ledger, which the front is read from
            session.execute(insert(OptunaTrialModel), [
                {"number": number, "study_id": study.optuna_study_id, "state": OPTUNA_STATES[state]}
                for number, (state, _) in outcomes.items()])
            optuna_ids = dict(session.execute(select(OptunaTrialModel.number, OptunaTrialModel.trial_id)
                                              .where(OptunaTrialModel.study_id == study.optuna_study_id)).all())
            session.execute(insert(TrialValueModel), [
                {"trial_id": optuna_ids[number], "objective": i, "value": v,
                 "value_type": TrialValueModel.TrialValueType.FINITE}
                for number, (state, value) in outcomes.items() if state == "complete"
                for i, v in enumerate((value, second[number]))])
            for trial in trials:
                trial["optuna_trial_id"] = optuna_ids[trial["number"]]
        session.execute(insert(TrialModel), trials)
        ids = {number: row_id for number, row_id in session.execute(
            select(TrialModel.number, TrialModel.id).where(TrialModel.study_id == study.id))}
        sanity, curves = [], []
        for number, (state, value) in outcomes.items():
            failed = state == "failed_sanity"
            sanity.append({"trial_id": ids[number], "attempt": 1, "passed": not failed, "created_at": start,
                           "reason": trials[number]["reason"].removeprefix("sanity gate: "),
                           "figures": {"failed_checks": ["loss_not_dropping"] if failed else []}})
            done = 0 if failed else epochs if state == "complete" else max(1, epochs // 2)
            for epoch in range(done):
                fall = 1.0 / (epoch + 1)
                curves.append({"trial_id": ids[number], "attempt": 1, "epoch": epoch, "created_at": start,
                               "metrics": {"epoch": epoch, "train_loss": {"main": 1.2 * fall, "helpful": 0.6 * fall,
                                                                          "harmful": 0.5 * fall},
                                           "val_loss": {"main": 1.3 * fall, "helpful": 0.7 * fall, "harmful": 0.6},
                                           "val_accuracy": value - 0.05 * (epochs - 1 - epoch), "seconds": 0.1}})
        session.execute(insert(SanityModel), sanity)
        if curves:
            session.execute(insert(EpochModel), curves)
    return store.set_study_status(study.id, "running" if running else "done")
