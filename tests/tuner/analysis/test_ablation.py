"""Per-task ablation on ``synthetic``: the best λ set against the same with one task's λ at 0, seed by seed.

The runs train for real through the engine (``execute_run``, as a worker does) and are read by the same report
the service serves; only the store is left out (``tests/api/routes/test_confirm.py`` goes through it)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from storage import RunRecord, StudyRecord, TrialRecord
from tuner.analysis.confirm import (
    ablation_lambdas,
    ablation_lines,
    confirmation_report,
    plan_confirmation,
)
from tuner.engine.prepared import prepare
from tuner.engine.runs import execute_run, run_spec
from tuner.spec import parse_spec

SPEC = {"name": "ablate", "workload": {"name": "synthetic", "params": {"n_train": 200, "n_val": 200, "n_test": 400,
                                                                        "data_seed": 2}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"},
                      {"name": "harmful", "loss": "mse", "lambda": {"low": 1.0, "high": 2.0}}],
        "search": {"algorithm": "random", "n_trials": 2}, "training": {"epochs": 6, "batch_size": 32, "lr": 0.003},
        "sanity": {"enabled": False}, "affinity": {"every": 0}}
BEST = {"helpful": 2.0, "harmful": 1.0}


def best_trial(params: dict[str, float]) -> TrialRecord:
    return TrialRecord(study_id=1, number=0, optuna_trial_id=0, params=params, state="complete", attempt=1,
                       worker_id=None, heartbeat_at=None, lease_expires_at=None, started_at=None, finished_at=None,
                       value=0.6, reason="", result=None)


def test_the_ablation_arms_are_the_best_set_with_one_task_at_zero() -> None:
    spec = parse_spec(SPEC)
    # helpful at 0 is the baseline (harmful at its lowest, 1): compared with the baseline, no arm of its own
    assert ablation_lambdas(spec, BEST) == {"harmful": {"helpful": 2.0, "harmful": 0.0}}
    assert ablation_lambdas(spec, {"helpful": 0.0, "harmful": 2.0}) == {"harmful": {"helpful": 0.0, "harmful": 0.0}}
    wide = parse_spec({**SPEC, "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}]})
    assert set(ablation_lambdas(wide, BEST)) == {"helpful", "harmful"}
    plans = plan_confirmation(spec, [best_trial(BEST)], 2, design={"round_seeds": 2, "max_seeds": 2, "ablate": False})
    assert {p.arm for p in plans} == {"baseline", "best"}


def test_helpful_helps_and_harmful_hurts() -> None:
    spec = parse_spec(SPEC)
    plans = plan_confirmation(spec, [best_trial(BEST)], 4, design={"round_seeds": 4, "max_seeds": 4, "ablate": True})
    assert {p.arm for p in plans} == {"baseline", "best", "ablate_harmful"}
    prep = prepare(run_spec(spec))  # run_spec lets harmful's λ down to 0 although its search bounds start at 1
    runs = []
    for i, plan in enumerate(plans):
        state, val, test, doc, reason = execute_run(prep, plan.kind, dict(plan.params), plan.seed)
        runs.append(RunRecord(i, 1, plan.kind, plan.arm, plan.trial_number, dict(plan.params), plan.seed, state, 1,
                              None, None, None, val, test, reason, doc))
    now = datetime.now(UTC)
    study = StudyRecord(1, "ablate", spec.model_dump(mode="json", by_alias=True), "", ["maximize"], "done", 1, None,
                        2, now, now)
    report = confirmation_report(study, runs)
    verdicts = {row["task"]: row for row in report["ablation"]}
    assert report["method"] == "paired" and set(verdicts) == {"helpful", "harmful"}
    assert verdicts["helpful"]["verdict"] == "helps" and verdicts["helpful"]["arm"] == "baseline"
    assert verdicts["harmful"]["verdict"] == "hurts" and verdicts["harmful"]["arm"] == "ablate_harmful"
    assert verdicts["helpful"]["ci_low"] > 0 > verdicts["harmful"]["ci_high"] and verdicts["harmful"]["seeds"] == 4
    lines = ablation_lines(report)
    assert lines[0].startswith("helpful: helps (best λ set minus the same with helpful at λ = 0: +")
    assert lines[1].startswith("harmful: hurts (best λ set minus the same with harmful at λ = 0: -")
    assert "paired t-test p = " in lines[1] and lines[1].endswith("4 seeds)")

    # a task the best λ set already leaves out gets no arm and says so
    zero = dataclasses.replace(runs[0], arm="best", kind="lambda", params={"helpful": 0.0, "harmful": 1.0})
    left_out = confirmation_report(study, [zero, *[r for r in runs if r.arm != "best"]])
    assert next(r for r in left_out["ablation"] if r["task"] == "helpful")["note"].startswith("the best λ set")
