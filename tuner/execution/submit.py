"""Submitting a study: the spec checked against the store, then stored as a study with its budget and controls.

One sequence for ``auxtune run`` (:func:`create_or_resume`) and ``POST /studies`` (``api.submission``, which
parses the document and adds its own limits and name rule around :func:`checked_backend` and :func:`store_study`).
Torch-free, so the API submits through it.
"""

from __future__ import annotations

from collections.abc import Mapping

from storage import Store, StudyNotFound, StudyRecord
from tuner.search import SearchBackend, make_backend
from tuner.spec import StudySpec
from tuner.spec.references import MayUse, check_references
from tuner.spec.stored import keep_stored_defaults


def spec_document(spec: StudySpec, references: Mapping[str, str] | None = None) -> dict:
    """The spec as stored: every default filled in, aliases as users write them (``lambda``); ``references``: the
    ``dataset:<id>`` to store for a workload file param in place of the path the spec was checked against."""
    document = spec.model_dump(mode="json", by_alias=True)
    if references:
        document["workload"]["params"] = {**document["workload"]["params"], **references}
    return document


def checked_backend(store: Store, spec: StudySpec, may_use: MayUse | None = None) -> SearchBackend:
    """The spec's search backend, once the spec can run on ``store``: the backend accepts it (something to search,
    a grid that fits) and the store serves every saved trunk or kd teacher it names (of a study ``may_use`` allows).

    Raises:
        SpecError: one ``(field, message)`` per problem; nothing is stored.
    """
    backend = make_backend(spec)
    check_references(store, spec, may_use)
    return backend


def store_study(store: Store, spec: StudySpec, backend: SearchBackend, owner: str | None = None,
                references: Mapping[str, str] | None = None) -> StudyRecord:
    """The store's study for ``spec`` (created with its budget and controls first, or the existing one of the
    same name and spec); raises ``StudyConflict`` for the same name with another definition. ``references``: see
    ``spec_document``.

    A field whose default changed since the study was stored, left out of ``spec``, keeps its stored value
    (``keep_stored_defaults``): the spec file that made the study resumes it."""
    try:
        spec = keep_stored_defaults(spec, store.get_study(spec.name).spec)
    except StudyNotFound:
        pass
    return store.create_or_resume_study(spec.name, spec_document(spec, references), spec.objective.directions(),
                                        backend.max_trials(), enqueue=backend.controls(), owner=owner)


def create_or_resume(store: Store, spec: StudySpec) -> StudyRecord:
    """Create the study with its controls first, or resume the one of the same name and spec.

    A paused study is resumed; a study that failed its study-level gate before any trial ran is queued again,
    so the gate runs again. A cancelled or done study stays as it is.

    Raises:
        SpecError: the search backend refuses the spec (nothing to search, a package missing), or the store cannot
            serve a saved model it names.
        StudyConflict: a study of this name exists with another definition.
    """
    study = store_study(store, spec, checked_backend(store, spec))
    started = any(n for state, n in store.counts_by_state(study.id).items() if state != "queued")
    if study.status == "paused" or (study.status == "failed" and not started):
        # A study that never got past its study-level gate goes back to ``queued`` so the gate runs again
        # (the data may have been fixed); one with trials behind it carries on ``running``.
        study = store.transition_study(study.id, "running" if started else "queued", (study.status,)) or study
    return study
