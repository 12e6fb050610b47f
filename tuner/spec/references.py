"""A spec's references to saved models of other trials, checked against the store before a study is stored.

``trunk.from_trial`` and a kd task's ``teacher`` name a trial ``<study>/<n>`` whose model was saved
(``artifacts.save`` of that study, ``storage._artifacts``). At submission (``POST /studies``, ``auxtune run``,
``auxtune validate --db``) each reference must name a study of the same store, a trial of it with a saved model,
and a model whose input shape fits this study's workload (a teacher's classes too). Over the API the study must
also be one the caller may use (``may_use``: its own, or any for an admin); a study of another owner gets the
very answer an absent one gets, so the errors tell nobody which of another owner's studies exist. No torch
here: the API calls it; ``tuner.engine.transfer`` loads the models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tuner.spec.errors import SpecError
from tuner.spec.study import StudySpec
from tuner.spec.transfer import split_trial_ref
from tuner.workloads import WorkloadError, make_workload

if TYPE_CHECKING:
    from storage import ArtifactRecord, Store


def saved_model_refs(spec: StudySpec) -> list[tuple[str, str]]:
    """``(field, "<study>/<n>")`` of every saved model the spec uses: its trunk, then each kd teacher."""
    refs = [("trunk.from_trial", spec.trunk.from_trial)] if spec.trunk is not None else []
    return refs + [(f"aux_tasks.{i}.teacher", t.teacher) for i, t in enumerate(spec.aux_tasks) if t.teacher]


def workload_aux_tasks(spec: StudySpec) -> tuple[str, ...]:
    """The aux tasks whose targets the workload gives (a kd task with a teacher gets them from the teacher)."""
    return tuple(sorted(t.name for t in spec.aux_tasks if t.teacher is None))


#: Who may use a study's saved models, given the study's owner (``api.auth.Principal.may_access``).
MayUse = Callable[[str | None], bool]


def find_saved_model(store: Store, ref: str, may_use: MayUse | None = None) -> ArtifactRecord:
    """The saved model ``ref`` names, of a study ``may_use`` allows (None: any study of the store).

    Raises:
        LookupError: no such study (or not one the caller may use: the same words), trial or saved model,
            with what to do.
    """
    from storage import ArtifactNotFound, StudyNotFound, TrialNotFound

    study, number = split_trial_ref(ref)
    absent = LookupError(f"no study named {study!r} that you may use in this store; name one of your studies of "
                         "the same store (<study>/<trial number>)")
    try:
        if may_use is not None and not may_use(store.get_study(study).owner):
            raise absent
        return store.artifact_info(study, number)
    except StudyNotFound:
        raise absent from None
    except (TrialNotFound, ArtifactNotFound) as exc:
        raise LookupError(str(exc)) from None


def shape_problem(meta: dict, ref: str, input_shape: tuple[int, ...], n_classes: int | None) -> str | None:
    """Why the saved model ``meta`` cannot serve a study whose data is ``input_shape`` (and, for a teacher, has
    ``n_classes`` classes), or None."""
    saved = tuple(int(d) for d in meta.get("input_shape", ()))
    if saved != tuple(input_shape):
        return (f"the saved model of {ref} takes inputs of shape {saved} and this study's workload gives "
                f"{tuple(input_shape)}; use a trial of a study on data of the same shape")
    if n_classes is not None and int(meta.get("n_classes", -1)) != n_classes:
        return (f"the teacher {ref} predicts {meta.get('n_classes')} classes and this study's main task has "
                f"{n_classes}; use a teacher trained on the same classes")
    return None


def check_references(store: Store, spec: StudySpec, may_use: MayUse | None = None) -> None:
    """Refuse a spec whose saved-model references the store cannot serve, or name a study ``may_use`` does not
    allow (nothing is stored by the caller then).

    Raises:
        SpecError: one ``(field, message)`` per bad reference, e.g. ``aux_tasks.0.teacher``.
    """
    refs = saved_model_refs(spec)
    if not refs:
        return
    try:
        shapes = make_workload(spec.workload.name, spec.workload.params).describe_shapes(workload_aux_tasks(spec))
    except (WorkloadError, KeyError):  # parse_spec reported those already
        shapes = None
    errors: list[tuple[str, str]] = []
    for field, ref in refs:
        try:
            found = find_saved_model(store, ref, may_use)
        except LookupError as exc:
            errors.append((field, str(exc.args[0])))
            continue
        if shapes is not None:  # None: a workload that cannot tell without building; the worker checks then
            problem = shape_problem(found.meta, ref, shapes[0], shapes[1] if field != "trunk.from_trial" else None)
            if problem:
                errors.append((field, problem))
    if errors:
        raise SpecError(errors)
