"""Confirmation: is the best λ set really better than the baseline? Plan it, queue it, grow it (no torch).

After the search, the best λ set (and optionally the next best ones), the baseline (every searched λ at its
lowest allowed value: 0 unless the bounds exclude it, as for the control trial), any learned-weighting arm of
the spec and, with ``ablate``, one arm per searched aux task (the best λ set with that task's λ at 0) are
retrained over fresh seeds. Every arm uses the same seeds (same initialisation and batch order), so the arms are
compared seed by seed (``tuner.analysis.confirm_report``). Confirmation seeds start at ``training.seed +
CONFIRM_SEED_BASE``, away from the search's (``training.seed + trial number``), so the winner's lucky seed is not
reused. With ``resample_splits`` (workloads with a ``split_seed`` param) each seed also redraws the data split
(``split_seed`` = the run's seed), and the verdict is about the population of splits, not about one split.

``seeds: auto`` queues one round of ``round_seeds`` seeds; once a round is finished, :func:`advance_confirmation`
(called by the worker that finished the last run, and by every request) looks at it and queues the next round
unless every deciding comparison's CI excludes 0 or ``max_seeds`` is reached (``tuner.analysis.sequential``).

Every run is a row of ``auxtune_runs`` (``storage._runs``) that any worker claims once its trials are done
(``tuner.execution.runs``), so a confirmation runs in parallel, survives a killed worker, and resumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from storage import RunPlan, RunRecord, Store, StudyRecord, TrialRecord
from tuner.analysis.confirm_report import (
    ABLATE_PREFIX,
    BASELINE,
    BEST,
    DESIGN_PARAM,
    SPLIT_SEED_PARAM,
    TRAIN_PARAMS_PARAM,
    ablation_lines,
    confirmation_report,
    confirmation_summary,
    run_design,
    run_lambdas,
    verdict_line,
)
from tuner.spec import ConfirmSpec, StudySpec, stored_spec
from tuner.spec.params import searched_params
from tuner.spec.transfer import TRUNK_MODE_PARAM, lambda_params
from tuner.workloads import WorkloadError, get_workload

__all__ = ["ABLATE_PREFIX", "BASELINE", "BEST", "CONFIRMABLE_STATUSES", "CONFIRM_SEED_BASE", "ConfirmError",
           "SPLIT_SEED_PARAM", "TRAIN_PARAMS_PARAM",
           "ablation_lines", "advance_confirmation", "confirmation_report", "confirmation_summary",
           "plan_confirmation", "request_confirmation", "run_lambdas", "stored_confirmation", "verdict_line",
           "wants_confirmation"]

#: Confirmation seed i is ``training.seed + CONFIRM_SEED_BASE + i``.
CONFIRM_SEED_BASE = 1_000_000
#: Studies whose search is over: only these can be confirmed.
CONFIRMABLE_STATUSES = ("done", "cancelled")


class ConfirmError(ValueError):
    """A confirmation cannot be queued; ``kind`` is ``search_running``, ``no_result_yet`` or ``multi_objective``."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def wants_confirmation(spec: StudySpec) -> bool:
    """Whether the spec asks for a confirmation after its search (a ``confirm`` block, or reference ``arms``)."""
    return spec.confirm is not None or bool(spec.arms)


def baseline_lambdas(spec: StudySpec) -> dict[str, float]:
    """Every searched λ at its lowest allowed value (0 unless the bounds exclude it); fixed λ stay fixed."""
    return spec.complete_lambdas({t.name: t.lambda_.low for t in spec.searched_tasks()})


def ranked_lambda_sets(spec: StudySpec, trials: Sequence[TrialRecord]) -> list[tuple[int, dict[str, float]]]:
    """Distinct complete λ sets of the complete trials, best first (ties: lower trial number), without the
    baseline's own λ set: ``[(trial number, λ), …]``. With a searched trunk mode, a λ set is distinct per mode
    (the same λ on a frozen and on a fine-tuned trunk are two arms); the baseline trains with the first mode."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    sign = -1.0 if spec.objective.direction == "maximize" else 1.0
    done.sort(key=lambda t: (sign * float(t.value or 0.0), t.number))
    base = baseline_lambdas(spec)
    seen: set[tuple[tuple[tuple[str, float], ...], str | None]] = {(tuple(sorted(base.items())),
                                                                    spec.trunk_mode_of({}))}
    out = []
    for t in done:
        lambdas = spec.complete_lambdas(lambda_params(t.params))
        key = (tuple(sorted(lambdas.items())), spec.trunk_mode_of(t.params))
        if key not in seen:
            seen.add(key)
            out.append((t.number, lambdas))
    return out


#: ``confirm.resample_splits: null`` means this for a workload that has a ``split_seed`` param, and
#: ``confirm.test: auto`` means DEFAULT_TEST (measured by bench/confirm_calibration.py: see README, "Trusting the
#: answer").
DEFAULT_RESAMPLE_SPLITS = True
DEFAULT_TEST = "paired"


def has_split_seed(spec: StudySpec) -> bool:
    """Whether the study's workload draws its split from a ``split_seed`` param (so it can be redrawn)."""
    try:
        return "split_seed" in get_workload(spec.workload.name).params_model.model_fields
    except WorkloadError:
        return False


def resolve_resample(spec: StudySpec, asked: bool | None) -> bool:
    """Whether the confirmation redraws the split per seed: as asked, else the default where the workload can.

    Raises:
        ConfirmError: it was asked for a workload without a ``split_seed`` param.
    """
    if asked and not has_split_seed(spec):
        raise ConfirmError("no_split_seed", f"resample_splits: workload {spec.workload.name!r} has no split_seed "
                                            "param to redraw; leave resample_splits unset or false")
    return has_split_seed(spec) and (DEFAULT_RESAMPLE_SPLITS if asked is None else asked)


def ablation_lambdas(spec: StudySpec, best: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per searched aux task, the best λ set with that task's λ at 0; left out where it is the best λ set itself
    (its λ is 0 already) or the baseline's (compared with the baseline instead)."""
    base = baseline_lambdas(spec)
    out = {}
    for task in spec.searched_tasks():
        lambdas = {**best, task.name: 0.0}
        if float(best.get(task.name, 0.0)) != 0.0 and lambdas != base:
            out[task.name] = lambdas
    return out


def plan_confirmation(spec: StudySpec, trials: Sequence[TrialRecord], seeds: int, top_k: int = 1, *,
                      design: dict[str, Any] | None = None, resample_splits: bool = False) -> list[RunPlan]:
    """The runs of a confirmation: baseline, the ``top_k`` best λ sets, the spec's arms and, with
    ``design["ablate"]``, the ablation arms, × ``seeds`` seeds; each run's params carry ``design``.

    Raises:
        ConfirmError: no complete trial has a λ set other than the baseline's.
    """
    ranked = ranked_lambda_sets(spec, trials)[:top_k]
    if not ranked:
        raise ConfirmError("no_result_yet", "the study has no complete trial with a λ set other than the "
                                            "baseline's; nothing to confirm")
    design = design or {"round_seeds": seeds, "max_seeds": seeds, "ablate": False}
    arms: list[tuple[str, str, dict[str, Any], int | None]] = [("baseline", BASELINE, baseline_lambdas(spec), None)]
    # A searched trunk mode (tuner.engine.transfer) goes with its λ set: the runs train as the trial did.
    modes = {t.number: t.params[TRUNK_MODE_PARAM] for t in trials if TRUNK_MODE_PARAM in t.params}
    arms += [("lambda", BEST if rank == 0 else f"rank{rank + 1}",
              {**lambdas, **({TRUNK_MODE_PARAM: modes[number]} if number in modes else {})}, number)
             for rank, (number, lambdas) in enumerate(ranked)]
    arms += [("weighting", arm.name, arm.model_dump(), None) for arm in spec.arms]
    if design.get("ablate"):
        number, best = ranked[0]
        mode = {TRUNK_MODE_PARAM: modes[number]} if number in modes else {}
        arms += [("ablation", ABLATE_PREFIX + task, {**lambdas, **mode}, number)
                 for task, lambdas in ablation_lambdas(spec, best).items()]
    seed_list = [spec.training.seed + CONFIRM_SEED_BASE + i for i in range(seeds)]
    # Every run trains at the best trial's searched params (search.params), so the arms differ in their λ only.
    best_trial = next((t for t in trials if t.number == ranked[0][0]), None)
    trained = searched_params(best_trial.params) if best_trial is not None else {}
    extra = {TRAIN_PARAMS_PARAM: trained} if trained else {}
    return [_plan(kind, arm, params, seed, number, design, resample_splits, extra)
            for kind, arm, params, number in arms for seed in seed_list]


def _plan(kind: str, arm: str, params: dict[str, Any], seed: int, number: int | None, design: dict[str, Any],
          resample_splits: bool, extra: dict[str, Any]) -> RunPlan:
    split = {SPLIT_SEED_PARAM: seed} if resample_splits else {}
    return RunPlan(kind=kind, arm=arm, params={**run_lambdas(params), DESIGN_PARAM: design, **split, **extra},
                   seed=seed, trial_number=number)


def _without_design(params: dict[str, Any] | Any) -> dict[str, Any]:
    return {k: v for k, v in dict(params).items() if k != DESIGN_PARAM}


def _keep_stored(plans: list[RunPlan], stored: Sequence[RunRecord]) -> list[RunPlan]:
    """Plans whose run is stored with the same λ and split keep the stored params (and so the stored run)."""
    by_key = {(r.arm, r.seed): r for r in stored}
    out = []
    for plan in plans:
        row = by_key.get((plan.arm, plan.seed))
        if row is not None and row.kind == plan.kind and _without_design(row.params) == _without_design(plan.params):
            plan = RunPlan(plan.kind, plan.arm, row.params, plan.seed, plan.trial_number)
        out.append(plan)
    return out


def request_confirmation(store: Store, study: StudyRecord, seeds: int | str | None = None,
                         top_k: int | None = None, *, ablate: bool | None = None, max_seeds: int | None = None,
                         resample_splits: bool | None = None, test: str | None = None) -> list[RunRecord]:
    """Queue the confirmation of a finished study (idempotent: stored runs are kept); returns all its runs.

    Every argument left None takes the spec's ``confirm`` block, else ``ConfirmSpec``'s defaults (10 seeds,
    top 1, no ablation). ``seeds="auto"`` queues the first round; :func:`advance_confirmation` the next ones.

    Raises:
        ConfirmError: the search is not over yet, it has no result to confirm, or the split cannot be redrawn.
    """
    if study.status not in CONFIRMABLE_STATUSES:
        raise ConfirmError("search_running", f"study {study.name!r} is {study.status}; a confirmation retrains "
                                             "the search's answer, so it can start once the study is done (or "
                                             "cancelled)")
    if len(study.directions) != 1:
        raise ConfirmError("multi_objective", f"study {study.name!r} has {len(study.directions)} objectives and no "
                                              "single best λ set to confirm")
    spec = stored_spec(study.spec)
    defaults = spec.confirm or ConfirmSpec()
    n = seeds or defaults.seeds
    most = max_seeds or defaults.max_seeds
    round_seeds = min(defaults.round_seeds, most) if n == "auto" else int(n)
    design: dict[str, Any] = {"round_seeds": round_seeds, "max_seeds": most if n == "auto" else round_seeds}
    design["ablate"] = defaults.ablate if ablate is None else ablate
    resample = resolve_resample(spec, defaults.resample_splits if resample_splits is None else resample_splits)
    chosen = test or defaults.test
    design["test"] = DEFAULT_TEST if chosen == "auto" else chosen
    if design["test"] == "corrected" and not resample:
        raise ConfirmError("no_split_seed", "test: corrected is the corrected resampled t-test: it needs "
                                            "resample_splits (a workload with a split_seed param); use test: paired")
    plans = plan_confirmation(spec, store.trials(study.id, states=["complete"]), round_seeds,
                              top_k or defaults.top_k, design=design, resample_splits=resample)
    store.enqueue_runs(study.id, _keep_stored(plans, store.runs(study.id)))
    return advance_confirmation(store, study, design)


def advance_confirmation(store: Store, study: StudyRecord, design: dict[str, Any] | None = None) -> list[RunRecord]:
    """Queue the next round of a sequential confirmation once the current one is finished and undecided (every
    arm gets the missing seeds up to the next look); returns all the study's runs.

    ``design``: the looks to follow (a new request's); None: the stored runs' own.
    """
    runs = store.runs(study.id)
    if not runs or any(r.state in ("queued", "running") for r in runs):
        return runs
    design = design or run_design(runs)
    if design is None:
        return runs
    report = confirmation_report(study, [replace(r, params={**r.params, DESIGN_PARAM: design}) for r in runs])
    target = (report.get("sequential") or {}).get("next_seeds")
    if not target:
        return runs
    base = min(r.seed for r in runs)
    resample = any(SPLIT_SEED_PARAM in r.params for r in runs)
    by_arm: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_arm.setdefault(r.arm, []).append(r)
    trained = next((r.params[TRAIN_PARAMS_PARAM] for r in runs if TRAIN_PARAMS_PARAM in r.params), None)
    extra = {TRAIN_PARAMS_PARAM: trained} if trained else {}
    plans = [_plan(arm_runs[0].kind, arm, arm_runs[0].params, base + i, arm_runs[0].trial_number, design, resample,
                   extra)
             for arm, arm_runs in by_arm.items() for i in range(target)
             if base + i not in {r.seed for r in arm_runs}]
    return store.enqueue_runs(study.id, plans) if plans else runs


def stored_confirmation(store: Store, study: StudyRecord) -> dict[str, Any] | None:
    """The report of the study's confirmation, or None when none was queued."""
    runs = store.runs(study.id)
    return confirmation_report(study, runs) if runs else None
