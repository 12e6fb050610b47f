"""Saved models of finished trials (``auxtune_artifacts``): save, look up and load by (study name, number).

The store keeps bytes and a JSON meta document and knows nothing of torch: ``tuner.engine.transfer`` makes the bytes
(``torch.save`` of a ``state_dict``) and reads them back (``torch.load(..., weights_only=True)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from storage._core import StoreCore, as_utc, json_safe, utcnow
from storage.errors import ArtifactNotFound, StudyNotFound, TrialNotFound
from storage.models import ArtifactModel, StudyModel, TrialModel


@dataclass(frozen=True)
class ArtifactRecord:
    """A saved model, without its bytes: whose it is, its format, how to rebuild it (``meta``) and its size."""

    study_id: int
    study_name: str
    number: int
    format: str
    meta: dict[str, Any]
    size: int
    created_at: datetime


def _record(row: ArtifactModel, study_name: str, size: int) -> ArtifactRecord:
    return ArtifactRecord(study_id=row.study_id, study_name=study_name, number=row.number, format=row.format,
                          meta=dict(row.meta), size=size, created_at=as_utc(row.created_at) or utcnow())


class ArtifactOps(StoreCore):
    def save_artifact(self, study_id: int, number: int, meta: Mapping[str, Any], state: bytes,
                      fmt: str = "torch.state_dict") -> ArtifactRecord:
        """Save (or replace) the model of trial ``number`` of the study (``artifacts.save: all``)."""
        with self.session("saving a trial's model") as session:
            study = StudyModel.find_or_raise(session, study_id)
            return self._write_artifact(session, study, number, meta, state, fmt, drop_others=False)

    def save_best_artifact(self, study_id: int, number: int, meta: Mapping[str, Any], state: bytes,
                           fmt: str = "torch.state_dict") -> ArtifactRecord | None:
        """Save the model of trial ``number`` as the study's one saved model (``artifacts.save: best``), decided
        in one transaction that holds the study row, so that workers finishing trials at once keep the best's:

        - ``number`` is the best complete trial: saved, and every other saved model of the study dropped;
        - a better trial's model is saved already: nothing is written (returns None);
        - a better trial finished but its model is not saved yet (its worker is on its way, and will drop the
          others): saved beside the others.
        """
        with self.session("saving the best trial's model") as session:
            study = StudyModel.find_or_raise(session, study_id, for_update=True)
            best = session.scalar(TrialModel.best_first(study_id, study.directions[0], TrialModel.number).limit(1))
            if best is None or best == number:
                return self._write_artifact(session, study, number, meta, state, fmt, drop_others=True)
            if session.scalar(select(ArtifactModel.id).where(ArtifactModel.study_id == study_id,
                                                             ArtifactModel.number == best)) is not None:
                return None
            return self._write_artifact(session, study, number, meta, state, fmt, drop_others=False)

    def _write_artifact(self, session: Session, study: StudyModel, number: int, meta: Mapping[str, Any],
                        state: bytes, fmt: str, drop_others: bool) -> ArtifactRecord:
        TrialModel.find_or_raise(session, study.id, number)
        if drop_others:
            session.execute(delete(ArtifactModel).where(ArtifactModel.study_id == study.id,
                                                        ArtifactModel.number != number))
        row = session.scalars(select(ArtifactModel).where(ArtifactModel.study_id == study.id,
                                                          ArtifactModel.number == number)).one_or_none()
        if row is None:
            row = ArtifactModel(study_id=study.id, number=number)
            session.add(row)
        row.format, row.meta, row.state, row.created_at = fmt, json_safe(dict(meta)), state, self._now()
        session.flush()
        session.refresh(row)
        return _record(row, study.name, len(state))

    def _find_artifact(self, session: Session, study_name: str, number: int) -> tuple[StudyModel, ArtifactModel]:
        study = StudyModel.find_by_name(session, study_name)
        if study is None:
            raise StudyNotFound(f"no study named {study_name!r}")
        row = session.scalars(select(ArtifactModel).where(ArtifactModel.study_id == study.id,
                                                          ArtifactModel.number == number)).one_or_none()
        if row is None:
            trial = session.scalars(select(TrialModel.state).where(TrialModel.study_id == study.id,
                                                                   TrialModel.number == number)).one_or_none()
            if trial is None:
                raise TrialNotFound(f"study {study_name!r} has no trial {number}")
            raise ArtifactNotFound(f"study {study_name!r} trial {number} has no saved model: run that study with "
                                   "artifacts.save: all (or best, for its best trial)")
        return study, row

    def artifact_info(self, study_name: str, number: int) -> ArtifactRecord:
        """The saved model of trial ``number`` of study ``study_name``, without its bytes.

        Raises:
            StudyNotFound, TrialNotFound, ArtifactNotFound: each with a message that says what to do.
        """
        with self.session("reading a saved model") as session:
            study, row = self._find_artifact(session, study_name, number)
            size = session.scalar(select(func.length(ArtifactModel.state)).where(ArtifactModel.id == row.id))
            return _record(row, study.name, int(size or 0))

    def load_artifact(self, study_name: str, number: int) -> tuple[ArtifactRecord, bytes]:
        """The saved model of trial ``number`` of study ``study_name`` and its bytes (raises as ``artifact_info``)."""
        with self.session("loading a saved model") as session:
            study, row = self._find_artifact(session, study_name, number)
            state = bytes(row.state)
            return _record(row, study.name, len(state)), state

    def artifacts(self, study_id: int) -> list[ArtifactRecord]:
        """The saved models of a study, by trial number (without their bytes)."""
        stmt = (select(ArtifactModel, StudyModel.name, func.length(ArtifactModel.state))
                .join(StudyModel, StudyModel.id == ArtifactModel.study_id)
                .where(ArtifactModel.study_id == study_id).order_by(ArtifactModel.number))
        with self.session("listing saved models") as session:
            return [_record(row, name, int(size or 0)) for row, name, size in session.execute(stmt)]



