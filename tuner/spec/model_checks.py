"""The checks of a spec against a workload that brings its own module (``Workload.build_model``), and of the
training controls the population path does not run; torch-free, run at submission with the workload's checks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuner.workloads import Workload

if TYPE_CHECKING:
    from tuner.spec.study import StudySpec


def user_module_errors(spec: StudySpec, workload: Workload) -> list[tuple[str, str]]:
    """What a spec asks that a workload's own module cannot give, as ``(field, message)`` pairs."""
    errors: list[tuple[str, str]] = []
    training = spec.training
    controls = [name for name, on in (("scheduler", training.scheduler.name != "none"
                                                    or training.scheduler.warmup_epochs > 0),
                                      ("precision", training.precision != "fp32"),
                                      ("grad_clip", training.grad_clip is not None),
                                      ("accumulate", training.accumulate > 1)) if on]
    if spec.population.size > 1 and controls:
        errors.append(("population.size", f"a population trains with the spec's optimiser only, without "
                                          f"training.{', training.'.join(controls)}; set population.size: 1 or "
                                          "drop those"))
    if not workload.brings_model():
        return errors
    name = spec.workload.name
    if spec.population.size > 1:
        errors.append(("population.size", f"workload {name!r} brings its own module, which a population cannot "
                                          "batch; set population.size: 1 (its trials run one at a time)"))
    if spec.trunk is not None:
        errors.append(("trunk", f"workload {name!r} brings its own module: a saved trunk cannot replace part of "
                                "it; drop trunk (load a pretrained backbone inside build_model instead)"))
    if spec.artifacts.save != "none":
        errors.append(("artifacts.save", f"workload {name!r} brings its own module, which auxtune cannot rebuild "
                                         "without it; set artifacts.save: none"))
    for i, task in enumerate(spec.aux_tasks):
        if task.loss == "mmd":
            errors.append((f"aux_tasks.{i}.loss", f"an mmd task needs the engine's own model (features of two "
                                                  f"domains); workload {name!r} brings its own module"))
    return errors
