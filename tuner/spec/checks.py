"""The checks of a whole spec beyond its structure: does its workload take it, and is the work it asks bounded.

``parse_spec`` runs them at submission (``check_runnable``); a worker runs them again on a stored spec before it
builds the study (``tuner.spec.stored``), since the workload registry and data files are the worker's own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tuner.spec.errors import SpecError
from tuner.spec.limits import MAX_GRID_SIZE, MAX_POPULATION_EPOCHS, MAX_STUDY_EPOCHS
from tuner.spec.model_checks import user_module_errors
from tuner.spec.params import param_errors
from tuner.spec.transfer import teacher_needs_memory
from tuner.workloads import WorkloadError, make_workload

if TYPE_CHECKING:
    from tuner.spec.study import StudySpec


def check_runnable(spec: StudySpec) -> None:
    """Refuse a spec its workload cannot take or whose work is past a budget.

    Raises:
        SpecError: naming the field and what is allowed (the workload's problems first, then the budgets').
    """
    check_spec_against_workload(spec)
    budget = budget_errors(spec)
    if budget:
        raise SpecError(budget)


def check_spec_against_workload(spec: StudySpec) -> None:
    """Check the workload exists, its params are valid and every aux task/loss fits it.

    Raises:
        SpecError: naming the field and what is allowed.
    """
    try:
        workload = make_workload(spec.workload.name, spec.workload.params)
    except KeyError as exc:
        raise SpecError([("workload.name", str(exc.args[0]))]) from None
    except WorkloadError as exc:
        raise SpecError([(exc.field, exc.message)]) from None
    try:
        tasks = workload.describe_tasks()
    except WorkloadError as exc:
        raise SpecError([(exc.field, exc.message)]) from None
    errors: list[tuple[str, str]] = []
    for i, task in enumerate(spec.aux_tasks):
        info = tasks.get(task.name)
        if task.teacher is not None:  # its targets come from the teacher (tuner.engine.transfer), not the workload
            if workload.reads_per_item:  # the worker's refusal (tuner.engine.transfer), before anything is queued
                errors.append((f"aux_tasks.{i}.teacher", teacher_needs_memory(spec.workload.name)))
            continue
        if info is None:
            errors.append((f"aux_tasks.{i}.name",
                           f"unknown aux task {task.name!r} for workload {spec.workload.name!r}; "
                           f"available: {sorted(tasks)}"))
        elif task.loss == "bce" and info.kind == "real":
            errors.append((f"aux_tasks.{i}.loss",
                           f"task {task.name!r} has {info.description}, which bce cannot take; "
                           "rescale the scores to [0, 1] or use loss mse"))
        elif task.loss not in info.losses:
            errors.append((f"aux_tasks.{i}.loss",
                           f"loss {task.loss!r} does not fit task {task.name!r} ({info.kind} targets); "
                           f"use one of {list(info.losses)}"))
    errors.extend(user_module_errors(spec, workload))
    errors.extend(param_errors(spec, workload.model_params))
    errors.extend(_model_param_errors(spec))
    on_target = [m for m in spec.objective.metrics() if m.startswith("target_")]
    if on_target and not any(info.kind == "domain" for info in tasks.values()):
        errors.append(("objective", f"{on_target} need a target domain and workload {spec.workload.name!r} has "
                                    "none here; give it one (digits: params.target_shift; table: "
                                    "params.target_data) or use val_accuracy"))
    elif on_target and not workload.target_labelled():
        errors.append(("objective", f"{on_target} need target-domain labels and this target domain has none; "
                                    "give the target file the label column, or use val_accuracy"))
    if errors:
        raise SpecError(errors)


def _model_param_errors(spec: StudySpec) -> list[tuple[str, str]]:
    """Each searched value of a workload's own param, checked by the workload's ``params_model``."""
    errors: list[tuple[str, str]] = []
    workload_cls = type(make_workload(spec.workload.name, spec.workload.params))
    for name, rng in spec.search.params.items():
        if name not in workload_cls.model_params:
            continue
        for value in rng.choices if rng.choices is not None else (rng.low, rng.high):
            try:
                make_workload(spec.workload.name, {**spec.workload.params, name: value})
            except WorkloadError as exc:
                errors.append((f"search.params.{name}", f"{value!r}: {exc.message}"))
    return errors


def budget_errors(spec: StudySpec) -> list[tuple[str, str]]:
    """The work the spec asks for past a budget, as ``(field, message)`` pairs naming what to lower."""
    errors: list[tuple[str, str]] = []
    epochs, n_trials = spec.training.epochs, spec.search.n_trials
    confirm_runs = 0
    if spec.confirm is not None:  # each of the top_k λ sets, the baseline, every arm and ablation, once per seed
        c = spec.confirm
        seeds = c.max_seeds if c.seeds == "auto" else c.seeds
        ablations = len(spec.searched_tasks()) if c.ablate else 0
        confirm_runs = seeds * (c.top_k + 1 + len(spec.arms) + ablations)
    if n_trials * epochs > MAX_STUDY_EPOCHS:
        errors.append(("search.n_trials", f"n_trials × training.epochs = {n_trials} × {epochs} = "
                                          f"{n_trials * epochs} epochs; at most {MAX_STUDY_EPOCHS}: lower "
                                          "search.n_trials or training.epochs"))
    elif (n_trials + confirm_runs) * epochs > MAX_STUDY_EPOCHS:
        errors.append(("confirm.seeds", f"the search and its confirmation ({confirm_runs} runs) train "
                                        f"{(n_trials + confirm_runs) * epochs} epochs; at most {MAX_STUDY_EPOCHS}: "
                                        "lower confirm.seeds (or max_seeds), confirm.top_k or training.epochs"))
    size = spec.population.size
    if size * epochs > MAX_POPULATION_EPOCHS:
        errors.append(("population.size", f"population.size × training.epochs = {size} × {epochs} = "
                                          f"{size * epochs} member-epochs in one job; at most "
                                          f"{MAX_POPULATION_EPOCHS}: lower population.size or training.epochs"))
    if spec.search.algorithm == "grid":
        errors.extend(grid_errors(spec))
    return errors


def grid_size(spec: StudySpec) -> int:
    """How many points the grid of ``spec`` has, by arithmetic (the grid itself may be too large to build)."""
    searched = len(spec.searched_tasks())
    modes = spec.trunk_modes() if spec.trunk is not None and spec.trunk.searched else []
    choices = [len(rng.choices) for rng in spec.search.params.values() if rng.choices is not None]
    return int(spec.search.grid_points ** searched) * max(1, len(modes)) * math.prod(choices)


def grid_errors(spec: StudySpec) -> list[tuple[str, str]]:
    """A grid past ``MAX_GRID_SIZE`` points, refused before anything builds it."""
    size = grid_size(spec)
    if size <= MAX_GRID_SIZE:
        return []
    searched = len(spec.searched_tasks())
    modes = max(1, size // spec.search.grid_points ** searched)
    most = 1
    while (most + 1) ** searched * modes <= MAX_GRID_SIZE:
        most += 1
    fix = f"lower search.grid_points (to {most} or fewer here)" if most >= 2 else "search fewer λ"
    return [("search.grid_points", f"grid_points {spec.search.grid_points} over {searched} searched λ makes "
                                   f"{size} grid points; at most {MAX_GRID_SIZE}: {fix}, or choose qmc or random")]
