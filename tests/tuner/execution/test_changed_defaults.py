"""Defaults changed by issue #18 (``search.algorithm``: auto, ``pruner.warmup_epochs``: follows the epochs) apply
to new studies, and a study stored with the old defaults written out resumes from the spec file that made it."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import Store, StudyConflict
from tuner.execution.submit import create_or_resume
from tuner.spec import parse_spec
from tuner.spec.study import GP_MAX_DIMS, GP_MAX_TRIALS, validate_structure


def spec_doc(n_tasks: int = 2, **search: object) -> dict:
    names = ["helpful", "neutral", *(f"t{i}" for i in range(n_tasks))][:n_tasks]
    return {
        "name": "old",
        "workload": {"name": "synthetic", "params": {"n_train": 64, "n_val": 64, "n_test": 64}},
        "aux_tasks": [{"name": n, "loss": "bce"} for n in names],
        "search": {"n_trials": 8, "pruner": {"name": "median"}, **search},
    }


OFF = {"name": "none"}  # no pruner


def test_auto_resolves_to_the_measured_default_and_is_stored_resolved() -> None:
    # a small single-objective search without a pruner (GP models complete trials only)
    assert validate_structure(spec_doc(pruner=OFF)).search.algorithm == "gp"
    assert validate_structure(spec_doc()).search.algorithm == "tpe"  # spec_doc's median pruner
    assert validate_structure(spec_doc(algorithm="random")).search.algorithm == "random"
    assert validate_structure(spec_doc(algorithm="tpe")).search.algorithm == "tpe"
    stored = validate_structure(spec_doc(algorithm="auto", pruner=OFF)).model_dump(mode="json", by_alias=True)
    assert stored["search"]["algorithm"] == "gp"  # stored as what it resolved to: the digest is deterministic
    # beyond GP's measured reach, TPE: more searched dimensions, more trials, or a Pareto study
    assert validate_structure(spec_doc(n_tasks=GP_MAX_DIMS, pruner=OFF)).search.algorithm == "gp"
    assert validate_structure(spec_doc(n_tasks=GP_MAX_DIMS + 1, pruner=OFF)).search.algorithm == "tpe"
    lr = {"low": 1e-4, "high": 1e-2, "log": True}
    with_lr = spec_doc(n_tasks=GP_MAX_DIMS, pruner=OFF, params={"lr": lr})
    assert validate_structure(with_lr).search.algorithm == "tpe"
    assert validate_structure(spec_doc(n_trials=GP_MAX_TRIALS, pruner=OFF)).search.algorithm == "gp"
    assert validate_structure(spec_doc(n_trials=GP_MAX_TRIALS + 1, pruner=OFF)).search.algorithm == "tpe"
    also = {"metric": "val_loss:helpful", "direction": "minimize"}
    pareto = {**spec_doc(pruner=OFF), "objective": [{"metric": "val_accuracy"}, also]}
    assert validate_structure(pareto).search.algorithm == "tpe"


def test_a_study_stored_with_the_old_defaults_resumes_from_its_spec_file(tmp_path: Path) -> None:
    doc = spec_doc()
    with Store(f"sqlite:///{tmp_path / 'o.db'}") as store:
        old = parse_spec(doc).model_dump(mode="json", by_alias=True)
        old["search"]["algorithm"] = "tpe"  # as every study stored before the defaults changed
        old["search"]["pruner"]["warmup_epochs"] = 2
        first = store.create_or_resume_study("old", old, ["maximize"], 8)
        assert create_or_resume(store, parse_spec(doc)).id == first.id  # the same spec file resumes it
        assert store.get_study("old").spec == old
        assert parse_spec(doc).search.algorithm == "tpe"  # what the same file makes of a new study (a pruner)
        for other in ({"algorithm": "gp"}, {"pruner": {"name": "median", "warmup_epochs": 5}}):
            with pytest.raises(StudyConflict):  # a spec that says otherwise is another study
                create_or_resume(store, parse_spec(spec_doc(**other)))
