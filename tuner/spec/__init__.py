"""A study's definition, torch-free: its blocks (``blocks``, ``study``), bounds (``limits``), objectives, transfer
references, parsing (``load``), the checks against the workload and budgets (``checks``) and the one reader of a
stored spec (``stored``). ``from tuner.spec import StudySpec, parse_spec, load_spec, SpecError`` is the public path."""

from tuner.spec.blocks import (
    ALGORITHMS,
    LOSSES,
    METRIC_DIRECTIONS,
    PRUNERS,
    WEIGHTINGS,
    AffinitySpec,
    ArmSpec,
    AuxTaskSpec,
    ConfirmSpec,
    LambdaSpec,
    LoaderSpec,
    ObjectiveSpec,
    PopulationSpec,
    PrunerSpec,
    ReevaluateSpec,
    SanitySpec,
    SchedulerSpec,
    SearchSpec,
    TrainingSpec,
    WorkloadSpec,
)
from tuner.spec.errors import SpecError, format_validation_error
from tuner.spec.load import load_spec, parse_spec
from tuner.spec.stored import primary_metric, stored_spec
from tuner.spec.study import StudySpec

__all__ = [
    "ALGORITHMS", "LOSSES", "METRIC_DIRECTIONS", "PRUNERS", "WEIGHTINGS", "AffinitySpec", "ArmSpec", "AuxTaskSpec",
    "ConfirmSpec", "LambdaSpec", "LoaderSpec", "ObjectiveSpec", "PopulationSpec", "PrunerSpec", "ReevaluateSpec",
    "SanitySpec", "SchedulerSpec", "SearchSpec", "SpecError", "StudySpec", "TrainingSpec", "WorkloadSpec",
    "format_validation_error", "load_spec",
    "parse_spec", "primary_metric", "stored_spec",
]
