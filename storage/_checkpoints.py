"""Checkpoints of running trials (``auxtune_checkpoints``): the last one per trial, so a requeued attempt resumes.

The store keeps bytes and knows nothing of torch (``tuner.engine.checkpoint`` makes and reads them). A checkpoint
is written under the trial's lease (a lost lease writes nothing) and read by whichever attempt holds the trial
next; it is dropped when the trial ends, and with its trial or study.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from storage._core import StoreCore
from storage._leases import LeaseOps
from storage.models import CheckpointModel
from storage.records import Claim


class CheckpointOps(StoreCore):
    def save_checkpoint(self, claim: Claim, epoch: int, state: bytes) -> None:
        """Keep ``state`` (taken at the end of ``epoch``) as the trial's checkpoint; renews the heartbeat.

        Raises ``LeaseLost`` (and stores nothing) if the lease is no longer current.
        """
        with self.session("saving a trial's checkpoint") as session:
            LeaseOps._renew(self, session, claim)  # type: ignore[arg-type]  # the lease check of every trial write
            row = session.scalars(select(CheckpointModel).where(
                CheckpointModel.trial_id == claim.trial_row_id)).one_or_none()
            if row is None:
                row = CheckpointModel(trial_id=claim.trial_row_id)
                session.add(row)
            row.epoch, row.attempt, row.state, row.created_at = epoch, claim.attempt, state, self._now()

    def load_checkpoint(self, trial_row_id: int) -> tuple[int, bytes] | None:
        """``(epoch, bytes)`` of the trial's last checkpoint, or None."""
        with self.session("loading a trial's checkpoint") as session:
            row = session.scalars(select(CheckpointModel).where(
                CheckpointModel.trial_id == trial_row_id)).one_or_none()
            return None if row is None else (row.epoch, bytes(row.state))

    def drop_checkpoint(self, trial_row_id: int) -> None:
        """Forget the trial's checkpoint (its trial ended)."""
        with self.session("dropping a trial's checkpoint") as session:
            session.execute(delete(CheckpointModel).where(CheckpointModel.trial_id == trial_row_id))
