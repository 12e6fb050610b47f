"""Searched training and model params (``search.params``): their names in a trial's params, their checks, and the
spec a trial trains with.

A searched param is stored among the trial's Optuna params as ``param.<name>`` next to the λ (aux task names
cannot hold a dot, so the two never meet and the λ keep their names). ``lr``, ``weight_decay``, ``batch_size``
and ``hidden`` set the ``training`` field of that name; any other name is one of the workload's
``model_params`` and sets ``workload.params.<name>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tuner.spec.blocks import ParamRange, TrainingSpec

if TYPE_CHECKING:
    from tuner.spec.study import StudySpec

PARAM_PREFIX = "param."
#: The ``training`` fields ``search.params`` may name; integer ones are searched as integers.
TRAINING_PARAMS: tuple[str, ...] = ("lr", "weight_decay", "batch_size", "hidden")
INTEGER_PARAMS: tuple[str, ...] = ("batch_size", "hidden")


def param_key(name: str) -> str:
    """The name of searched param ``name`` among a trial's Optuna params."""
    return PARAM_PREFIX + name


def searched_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The searched params of a trial's stored params, by their spec names (``{}`` for a λ-only study)."""
    return {k[len(PARAM_PREFIX):]: v for k, v in params.items() if k.startswith(PARAM_PREFIX)}


def is_param_key(key: str) -> bool:
    return key.startswith(PARAM_PREFIX)


def is_integer(name: str, model_params: Mapping[str, str] | None = None) -> bool:
    """Whether param ``name`` takes integers (a training field, or a workload's param declared ``"int"``)."""
    return name in INTEGER_PARAMS or (model_params or {}).get(name) == "int"


def _bound_errors(name: str, rng: ParamRange) -> list[tuple[str, str]]:
    values: Iterable[Any] = rng.choices if rng.choices is not None else (rng.low, rng.high)
    errors: list[tuple[str, str]] = []
    for value in values:
        if name in INTEGER_PARAMS and (isinstance(value, str) or float(value) != int(value)):
            errors.append((f"search.params.{name}", f"{name} takes integers; {value!r} is not one"))
            continue
        try:
            TrainingSpec.model_validate({name: int(value) if name in INTEGER_PARAMS else value})
        except ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            errors.append((f"search.params.{name}", f"{value!r}: {msg} (the bounds of training.{name})"))
    return errors


def param_errors(spec: StudySpec, model_params: Mapping[str, str]) -> list[tuple[str, str]]:
    """``search.params`` names that neither ``training`` nor the workload's ``model_params`` know, and values
    outside the bounds of the field they set."""
    allowed = [*TRAINING_PARAMS, *model_params]
    errors: list[tuple[str, str]] = []
    for name, rng in spec.search.params.items():
        if name in TRAINING_PARAMS:
            errors.extend(_bound_errors(name, rng))
        elif name not in model_params:
            errors.append((f"search.params.{name}", f"{name!r} is not a searchable param of workload "
                                                    f"{spec.workload.name!r}; allowed: {allowed}"))
        elif model_params[name] == "int" and rng.choices is None and (
                rng.low != int(rng.low or 0) or rng.high != int(rng.high or 0)):
            errors.append((f"search.params.{name}", f"{name} takes integers; give integer low and high"))
    return errors


def with_params(spec: StudySpec, params: Mapping[str, Any]) -> StudySpec:
    """``spec`` as a trial with these searched params trains: ``training.<name>`` or ``workload.params.<name>``
    set from them (``spec`` itself when there are none)."""
    if not params:
        return spec
    training = {k: (int(v) if k in INTEGER_PARAMS else v) for k, v in params.items() if k in TRAINING_PARAMS}
    model = {k: v for k, v in params.items() if k not in TRAINING_PARAMS}
    update: dict[str, Any] = {"training": spec.training.model_copy(update=training)}
    if model:
        update["workload"] = spec.workload.model_copy(update={"params": {**spec.workload.params, **model}})
    return spec.model_copy(update=update)
