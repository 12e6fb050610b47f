"""The one reader of a stored spec: the document as the store holds it, read back the same way everywhere."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.spec import SpecError, parse_spec, primary_metric, stored_spec
from tuner.spec.stored import DEFAULT_METRIC


def stored(**changes: Any) -> dict[str, Any]:
    """A spec as the store holds it (``parse_spec`` at submission, then dumped)."""
    doc = {"name": "kept", "workload": {"name": "synthetic", "params": {"n_train": 50, "n_val": 50, "n_test": 50}},
           "aux_tasks": [{"name": "helpful", "loss": "bce"}], "objective": {"metric": "val_loss"}}
    return {**parse_spec(doc).model_dump(mode="json", by_alias=True), **changes}


def test_a_stored_spec_reads_back_as_it_was_submitted() -> None:
    doc = stored()
    assert stored_spec(doc).model_dump(mode="json", by_alias=True) == doc
    assert stored_spec(doc, to_run=True) == stored_spec(doc)
    assert primary_metric(doc) == "val_loss"


def test_a_document_this_version_cannot_read_is_a_spec_error_naming_the_field() -> None:
    with pytest.raises(SpecError) as info:
        stored_spec(stored(search={"algorithm": "annealing"}))
    assert [loc for loc, _ in info.value.errors] == ["search.algorithm"]
    with pytest.raises(SpecError):
        stored_spec([])  # type: ignore[arg-type]


def test_only_a_worker_about_to_run_it_checks_the_workload() -> None:
    doc = stored(workload={"name": "not-installed-here", "params": {}}, aux_tasks=[])
    assert stored_spec(doc).workload.name == "not-installed-here"  # the readers: status, best, reports
    with pytest.raises(SpecError) as info:
        stored_spec(doc, to_run=True)
    assert [loc for loc, _ in info.value.errors] == ["workload.name"]


@pytest.mark.parametrize("objective", [None, {}, "val_loss", ["val_loss"]])
def test_the_primary_metric_of_a_row_without_one_is_the_spec_default(objective: Any) -> None:
    doc = {k: v for k, v in stored().items() if k != "objective"}
    if objective is not None:
        doc["objective"] = objective
    assert primary_metric(doc) == DEFAULT_METRIC == parse_spec(stored(objective={})).objective.metric


def test_confirm_fields_added_later_keep_old_documents_and_are_bounded() -> None:
    old = stored(confirm={"seeds": 10, "top_k": 1})  # a confirm block stored before seeds: auto and ablate
    assert parse_spec(old).model_dump(mode="json", by_alias=True)["confirm"] == {"seeds": 10, "top_k": 1}
    new = parse_spec(stored(confirm={"seeds": "auto", "max_seeds": 8, "ablate": True, "test": "corrected"}))
    assert new.confirm is not None and (new.confirm.seeds, new.confirm.max_seeds, new.confirm.ablate) == ("auto", 8,
                                                                                                          True)
    for bad, field in (({"seeds": "many"}, "confirm.seeds"), ({"max_seeds": 5000}, "confirm.max_seeds"),
                       ({"seeds": "auto", "round_seeds": 20}, "confirm"), ({"test": "welch"}, "confirm.test"),
                       ({"ablate": "sometimes"}, "confirm.ablate")):
        with pytest.raises(SpecError) as refused:
            parse_spec(stored(confirm=bad))
        assert any(loc.startswith(field) for loc, _ in refused.value.errors), (bad, refused.value.errors)
