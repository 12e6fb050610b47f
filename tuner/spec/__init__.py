"""A study's definition, torch-free: its blocks (``blocks``), bounds (``limits``), objectives, transfer references
and parsing. ``from tuner.spec import StudySpec, parse_spec, load_spec, SpecError`` is the public path."""

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
    ObjectiveSpec,
    PopulationSpec,
    PrunerSpec,
    SanitySpec,
    SearchSpec,
    SpecError,
    StudySpec,
    TrainingSpec,
    WorkloadSpec,
    format_validation_error,
    load_spec,
    parse_spec,
)

__all__ = [
    "ALGORITHMS", "LOSSES", "METRIC_DIRECTIONS", "PRUNERS", "WEIGHTINGS", "AffinitySpec", "ArmSpec", "AuxTaskSpec",
    "ConfirmSpec", "LambdaSpec", "ObjectiveSpec", "PopulationSpec", "PrunerSpec", "SanitySpec", "SearchSpec",
    "SpecError", "StudySpec", "TrainingSpec", "WorkloadSpec", "format_validation_error", "load_spec", "parse_spec",
]
