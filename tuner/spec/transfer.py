"""The spec blocks of saved models reused (``tuner.engine.transfer``): ``trunk``, ``artifacts``, and trial references.

A trial is named ``<study>/<trial number>`` (``trunk.from_trial``, a kd task's ``teacher``). A searched trunk mode
is the trial param ``trunk_mode`` next to the λ; ``lambda_params`` takes the λ alone out of a trial's params.
``tuner.spec`` uses the blocks; callers import the helpers from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

TRUNK_MODES: tuple[str, ...] = ("freeze", "finetune", "finetune_lower_lr")
TrunkMode = Literal["freeze", "finetune", "finetune_lower_lr"]
#: The name of the searched trunk-mode dimension in a trial's params, next to the λ (``trunk.mode`` a list).
TRUNK_MODE_PARAM = "trunk_mode"
_TRIAL_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[0-9]+$")


def check_trial_ref(ref: str | None) -> str | None:
    """A reference to a trial of a study of the same store, ``<study>/<trial number>``."""
    if ref is not None and not _TRIAL_REF.match(ref):
        raise ValueError(f"{ref!r} is not <study>/<trial number>; write e.g. digits-teacher/3")
    return ref


def split_trial_ref(ref: str) -> tuple[str, int]:
    """``"<study>/<n>"`` → ``(study name, trial number)`` (the reference is already checked by the spec)."""
    study, _, number = ref.rpartition("/")
    return study, int(number)


def teacher_needs_memory(workload: str) -> str:
    """Why a kd teacher cannot serve ``workload``, whose splits are read per item: the refusal at submission
    (``tuner.spec.checks``, ``Workload.reads_per_item``) and by the worker that builds the data
    (``tuner.engine.transfer``)."""
    return (f"a kd teacher predicts every input once, which needs in-memory splits; workload {workload!r} reads "
            "its splits per item: drop the teacher (or use the saved model as trunk.from_trial)")


def lambda_params(params: Mapping[str, Any]) -> dict[str, float]:
    """The λ of a trial's stored params: every param but the searched trunk mode and the searched training params
    (``param.<name>``, ``tuner.spec.params``), as floats."""
    return {k: float(v) for k, v in params.items() if k != TRUNK_MODE_PARAM and not k.startswith("param.")}


class TrunkSpec(BaseModel):
    """Start the shared trunk from the saved model of a finished trial (``tuner.engine.transfer``).

    ``mode``: ``freeze`` (the trunk is fixed, in eval mode, and only the heads train), ``finetune`` (everything
    trains at ``training.lr``) or ``finetune_lower_lr`` (the trunk trains at ``training.lr × lr_factor``). A list
    of modes makes the mode a searched dimension (``trunk_mode``) next to the λ; the controls use the first.
    """

    model_config = ConfigDict(extra="forbid")

    from_trial: str = Field(description="<study>/<trial number> whose saved model to start from")
    mode: TrunkMode | list[TrunkMode] = "freeze"
    lr_factor: float = Field(0.1, gt=0.0, le=1.0, description="trunk lr = training.lr × this in finetune_lower_lr")

    _check_from_trial = field_validator("from_trial")(check_trial_ref)

    @field_validator("mode")
    @classmethod
    def _distinct_modes(cls, mode: Any) -> Any:
        if isinstance(mode, list):
            if not mode:
                raise ValueError(f"list at least one mode of {list(TRUNK_MODES)}")
            if len(set(mode)) != len(mode):
                raise ValueError("a mode is listed more than once; list each mode once")
        return mode

    def modes(self) -> list[str]:
        """The modes, in order; more than one: the mode is searched."""
        return [str(m) for m in self.mode] if isinstance(self.mode, list) else [str(self.mode)]

    @property
    def searched(self) -> bool:
        return len(self.modes()) > 1


class ArtifactsSpec(BaseModel):
    """Which finished trials keep their trained model in the store (``auxtune_artifacts``), for later studies'
    ``trunk.from_trial`` and kd ``teacher``: ``none`` (default: 10 000 trials × a model is too much to keep),
    ``best`` (only the best complete trial so far: older ones are dropped) or ``all`` complete trials."""

    model_config = ConfigDict(extra="forbid")

    save: Literal["none", "best", "all"] = "none"
