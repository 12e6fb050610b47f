"""Submitting a study: the stored spec document and the study row with its budget and controls.

Torch-free, so the API submits through it too (``api.submission``).
"""

from __future__ import annotations

from storage import Store, StudyRecord
from tuner.search import SearchBackend, make_backend
from tuner.spec import StudySpec


def spec_document(spec: StudySpec) -> dict:
    """The spec as stored: every default filled in, aliases as users write them (``lambda``)."""
    return spec.model_dump(mode="json", by_alias=True)


def store_study(store: Store, spec: StudySpec, backend: SearchBackend, owner: str | None = None) -> StudyRecord:
    """The store's study for ``spec`` (created with its budget and controls first, or the existing one of the
    same name and spec); raises ``StudyConflict`` for the same name with another definition."""
    return store.create_or_resume_study(spec.name, spec_document(spec), spec.objective.directions(),
                                        backend.max_trials(), enqueue=backend.controls(), owner=owner)


def create_or_resume(store: Store, spec: StudySpec) -> StudyRecord:
    """Create the study with its controls first, or resume the one of the same name and spec.

    A paused study is resumed; a study that failed its study-level gate before any trial ran is queued again,
    so the gate runs again. A cancelled or done study stays as it is.

    Raises:
        SpecError: the search backend refuses the spec (nothing to search, a package missing).
        StudyConflict: a study of this name exists with another definition.
    """
    study = store_study(store, spec, make_backend(spec))
    started = any(n for state, n in store.counts_by_state(study.id).items() if state != "queued")
    if study.status == "paused" or (study.status == "failed" and not started):
        # A study that never got past its study-level gate goes back to ``queued`` so the gate runs again
        # (the data may have been fixed); one with trials behind it carries on ``running``.
        study = store.transition_study(study.id, "running" if started else "queued", (study.status,)) or study
    return study
