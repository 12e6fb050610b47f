"""Turning a POSTed spec into a queued study: datasets resolved, spec checked, name checked, controls enqueued.

A POST always creates: a name that is already taken is a 409 even when the spec is identical (the CLI's
``auxtune run`` resumes instead). The message gives the existing study's id when the caller owns it, so a
client that retries after a lost response can fetch it with ``GET /api/v1/studies/{id}``. Two identical POSTs
racing each other may both get 201 with the same study: either way one study exists.

The study-level sanity gate needs torch, so it is not run here: the study is stored as ``queued`` and the
workers run the gate before its first trial.
"""

from __future__ import annotations

from typing import Any

from api.auth import Principal
from api.config import Settings
from api.datasets import Datasets
from api.errors import ApiError, error_item, spec_field_loc
from storage import Store, StudyConflict, StudyNotFound, StudyRecord
from tuner.execution.submit import checked_backend, store_study
from tuner.spec import SpecError, parse_spec
from tuner.spec.limits import MAX_TRIALS, unstorable_values


def submit_study(store: Store, datasets: Datasets, settings: Settings, principal: Principal,
                 document: dict[str, Any]) -> StudyRecord:
    """Create the study of ``document`` (already structurally valid) for ``principal``.

    Raises:
        ApiError: 422 for a spec that cannot run (every problem, each with its field), 409 for a taken name,
            403/422 for a dataset reference the caller may not use or that does not exist.
    """
    unstorable = list(unstorable_values(document, ["body"]))
    if unstorable:
        raise ApiError.many(422, [error_item(loc, msg, "out_of_range") for loc, msg in unstorable])
    resolved = datasets.resolve_references(document, principal, settings.allow_server_paths)
    try:
        spec = parse_spec(resolved.document)
        # A saved trunk or kd teacher this store cannot serve, or of another owner's study: refused, not stored.
        backend = checked_backend(store, spec, principal.may_access)
    except SpecError as e:  # messages name files: uploads by their reference, not where they are kept
        raise ApiError.many(422, [error_item(spec_field_loc(field), resolved.hide(msg), "invalid_spec")
                                  for field, msg in e.errors]) from None
    if backend.max_trials() > MAX_TRIALS:
        raise ApiError(422, f"at most {MAX_TRIALS} trials per study; lower search.n_trials",
                       ["body", "search", "n_trials"], "out_of_range")
    _refuse_taken_name(store, principal, spec.name)
    try:
        # stored with its references, not this machine's paths: each worker fetches the data sets from the store
        study = store_study(store, spec, backend, owner=principal.owner, references=resolved.references)
    except StudyConflict:  # created by someone else between our check and now
        _refuse_taken_name(store, principal, spec.name)
        raise
    if study.owner != principal.owner:  # same race, identical spec, another owner: not ours to hand out
        _refuse_taken_name(store, principal, spec.name)
    return study


def _refuse_taken_name(store: Store, principal: Principal, name: str) -> None:
    try:
        existing = store.get_study(name)
    except StudyNotFound:
        return
    if principal.may_access(existing.owner):
        msg = (f"a study named {name!r} already exists (id {existing.id}, {existing.status}); fetch it with "
               f"GET /api/v1/studies/{existing.id}, or give this spec another name to start a new study")
    else:
        msg = f"a study named {name!r} already exists (of another owner); give this spec another name"
    raise ApiError(409, msg, ["body", "name"], "name_taken")
