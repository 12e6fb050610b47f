"""The one reader of a stored spec (``StudyRecord.spec``, the document ``parse_spec`` checked at submission).

A stored document is read back as a ``StudySpec`` with its structure checked (``stored_spec``): the workload
registry and data files are not the reader's concern, except for a worker about to run the study
(``to_run=True``: checked as at submission, against this worker's workloads). Its primary metric is read
without validating the whole document (``primary_metric``), so a row stored by another version still names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from tuner.spec.blocks import ObjectiveSpec
from tuner.spec.checks import check_runnable
from tuner.spec.errors import SpecError
from tuner.spec.study import StudySpec, validate_structure

#: The metric of a document that names none: the one ``StudySpec`` itself would read there.
DEFAULT_METRIC: str = ObjectiveSpec.model_fields["metric"].default


def stored_spec(doc: Mapping[str, Any], *, to_run: bool = False) -> StudySpec:
    """The ``StudySpec`` of a stored document; ``to_run``: also checked against the workload and the budgets.

    Raises:
        SpecError: the document is not a spec this version reads (or, ``to_run``, cannot run here).
    """
    if not isinstance(doc, Mapping):
        raise SpecError([("", "the stored spec is not a mapping")])
    spec = validate_structure(doc)
    if to_run:
        check_runnable(spec)
    return spec


def primary_metric(doc: Mapping[str, Any]) -> str:
    """The primary objective's metric of a stored document (``DEFAULT_METRIC`` when it names none)."""
    objective = doc.get("objective")
    if not isinstance(objective, Mapping):
        return DEFAULT_METRIC
    return str(objective.get("metric", DEFAULT_METRIC))


def keep_stored_defaults(spec: StudySpec, doc: Mapping[str, Any]) -> StudySpec:
    """``spec`` resubmitted for the study stored as ``doc``: a field whose default changed since (a block's
    ``changed_defaults``), left out of the resubmitted spec, takes the stored value when that is the old default.

    So a spec file written before the change resumes its study instead of conflicting with it; a new study, or a
    spec that writes the field, gets what it says.
    """
    kept = _keep(spec, doc)
    assert isinstance(kept, StudySpec)
    return kept


def _keep(model: BaseModel, doc: Any) -> BaseModel:
    if not isinstance(doc, Mapping):
        return model
    fields = type(model).model_fields
    update: dict[str, Any] = {}
    for name, old in getattr(model, "changed_defaults", {}).items():
        key = fields[name].alias or name
        if name not in model.model_fields_set and key in doc and doc[key] == old and getattr(model, name) != old:
            update[name] = old
    for name, field in fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            kept = _keep(value, doc.get(field.alias or name))
            if kept is not value:
                update[name] = kept
    return model.model_copy(update=update) if update else model
