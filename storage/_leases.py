"""What a lease holder does: heartbeat, record epochs and sanity results, report, finish, release.

Every write is a conditional statement on the lease (``WHERE id = ? AND lease_id = ? AND state = 'running'``),
so a worker whose lease expired (and whose trial was requeued) cannot write anything.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from optuna.storages._rdb.models import TrialIntermediateValueModel, TrialSystemAttributeModel
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from storage._core import StoreCore, json_safe
from storage._ledger import clear_worker, mark_done_if_finished, requeue_in_optuna, tell_optuna
from storage.errors import LeaseLost
from storage.models import EpochModel, SanityModel, TrialModel, WorkerModel
from storage.records import FINISHED_TRIAL_STATES, Claim

logger = logging.getLogger(__name__)

_PLAIN_SAMPLER = optuna.samplers.RandomSampler()
_NO_PRUNER = optuna.pruners.NopPruner()


class LeaseOps(StoreCore):
    # -- while running -------------------------------------------------------------------------------------
    def _renew(self, session: Session, claim: Claim) -> None:
        """Renew the lease's heartbeat, or raise ``LeaseLost`` if the lease is no longer current."""
        result = session.execute(
            update(TrialModel)
            .where(TrialModel.id == claim.trial_row_id, TrialModel.lease_id == claim.lease_id,
                   TrialModel.state == "running")
            .values(heartbeat_at=self._now(), lease_expires_at=self._after(claim.lease_timeout_s))
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            raise LeaseLost(
                f"trial {claim.number} of study {claim.study_name!r}: the lease of worker {claim.worker_id} "
                f"(attempt {claim.attempt}) is no longer current (it expired and the trial was requeued, or the "
                "trial already finished); drop this result"
            )

    def heartbeat(self, claim: Claim) -> bool:
        """Renew the lease (and the worker's heartbeat); ``False`` if the lease was lost."""
        try:
            with self.session("sending a heartbeat") as session:
                self._renew(session, claim)
                session.execute(update(WorkerModel).where(WorkerModel.id == claim.worker_id)
                                .values(last_heartbeat_at=self._now()))
        except LeaseLost:
            return False
        return True

    def record_epoch(self, claim: Claim, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Store one epoch's metrics (re-recording an epoch replaces it); renews the heartbeat.

        Raises ``LeaseLost`` if the lease is no longer current.
        """
        self.record_epochs(claim, [(epoch, metrics)])

    def record_epochs(
        self,
        claim: Claim,
        epochs: Sequence[tuple[int, Mapping[str, Any]]],
        intermediate: Sequence[tuple[int, float]] = (),
        system_attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """Store several epochs in one transaction (workers batch short epochs); renews the heartbeat.

        ``intermediate`` (step, value) pairs go to Optuna's ledger in the same transaction, as ``trial.report``
        would have written them one transaction each, and ``system_attrs`` (what a pruner set on the trial,
        e.g. successive halving's rungs) likewise: a pruner deciding in memory (``tuner.search.SnapshotPruner``)
        costs no write of its own. Raises ``LeaseLost`` (and stores nothing) if the lease is no longer current.
        """
        if not epochs and not intermediate and not system_attrs:
            return
        with self.session("recording epochs") as session:
            self._renew(session, claim)
            self._write_optuna_reports(session, claim.optuna_trial_id, intermediate, system_attrs or {})
            numbers = [e for e, _ in epochs]
            existing = {row.epoch: row for row in session.scalars(select(EpochModel).where(
                EpochModel.trial_id == claim.trial_row_id, EpochModel.attempt == claim.attempt,
                EpochModel.epoch.in_(numbers)))}
            now = self._now()
            for epoch, metrics in epochs:
                row = existing.get(epoch)
                if row is None:
                    row = EpochModel(trial_id=claim.trial_row_id, attempt=claim.attempt, epoch=epoch,
                                     metrics=json_safe(dict(metrics)), created_at=now)
                    session.add(row)
                    existing[epoch] = row
                else:
                    row.metrics = json_safe(dict(metrics))

        live = claim.trial
        if live is not None and intermediate:  # what ``tell_live`` reads a pruned trial's value from
            live._cached_frozen_trial.intermediate_values.update(dict(intermediate))

    @staticmethod
    def _write_optuna_reports(session: Session, trial_id: int, intermediate: Sequence[tuple[int, float]],
                              system_attrs: Mapping[str, Any]) -> None:
        """Optuna's rows for reported values and trial attributes, replaced in our transaction."""
        if intermediate:
            values = dict(intermediate)
            table = TrialIntermediateValueModel.__table__
            session.execute(delete(table).where(table.c.trial_id == trial_id, table.c.step.in_(list(values))))
            rows = []
            for step, value in values.items():
                stored, kind = TrialIntermediateValueModel.intermediate_value_to_stored_repr(float(value))
                rows.append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                             "intermediate_value_type": kind})
            session.execute(insert(table), rows)
        if system_attrs:
            attrs = TrialSystemAttributeModel.__table__
            session.execute(delete(attrs).where(attrs.c.trial_id == trial_id, attrs.c.key.in_(list(system_attrs))))
            session.execute(insert(attrs), [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                                            for k, v in system_attrs.items()])

    def pruning_snapshot(self, claim: Claim) -> list[FrozenTrial]:
        """The study's COMPLETE and PRUNED trials as Optuna holds them, with their reported values: one read and no
        write, what a pruner decides against in memory (``tuner.search.SnapshotPruner``). Do not modify them."""
        study = claim.trial.study if claim.trial is not None else self._plain_study(claim)
        with self._optuna_errors("reading the trials a pruner compares with"):
            return study._storage.get_all_trials(study._study_id, deepcopy=False,
                                                 states=(TrialState.COMPLETE, TrialState.PRUNED))

    def record_sanity(self, claim: Claim, result: Mapping[str, Any]) -> None:
        """Store the sanity gate's outcome: ``result`` has ``passed``, ``reason`` and any figures (e.g.
        ``SanityResult.to_dict()``). Raises ``LeaseLost`` if the lease is no longer current."""
        figures = json_safe({k: v for k, v in result.items() if k not in ("passed", "reason")})
        with self.session("recording a sanity check") as session:
            self._renew(session, claim)
            row = session.scalars(select(SanityModel).where(
                SanityModel.trial_id == claim.trial_row_id, SanityModel.attempt == claim.attempt)).one_or_none()
            if row is None:
                row = SanityModel(trial_id=claim.trial_row_id, attempt=claim.attempt, created_at=self._now())
                session.add(row)
            row.passed = bool(result.get("passed"))
            row.reason = str(result.get("reason") or "")
            row.figures = figures

    def report(self, claim: Claim, step: int, value: float) -> bool:
        """Report an intermediate objective value to Optuna (for its pruner) and return whether to prune.

        Checks and renews the lease first (``LeaseLost`` if gone). The pruner is the one the claim was made
        with; a claim without its live ``trial`` (rebuilt elsewhere) records the value but never prunes.
        """
        with self.session("checking the lease") as session:
            self._renew(session, claim)
        trial = claim.trial or optuna.trial.Trial(self._plain_study(claim), claim.optuna_trial_id)
        with self._optuna_errors("reporting to Optuna"):
            trial.report(value, step)
            return trial.should_prune()

    def _plain_study(self, claim: Claim) -> optuna.Study:
        """The Optuna study for a claim that lost its live trial: no sampler state, a pruner that never prunes."""
        return self.optuna_study(self.get_study(claim.study_id), _PLAIN_SAMPLER, _NO_PRUNER)

    # -- ending --------------------------------------------------------------------------------------------
    def finish_trial(
        self,
        claim: Claim,
        state: str,
        value: float | Sequence[float] | None = None,
        result: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> None:
        """Record the trial's outcome, then tell Optuna (COMPLETE, PRUNED, or FAIL for both failed states).

        ``complete`` needs a finite ``value``; ``failed_sanity`` is final and never retried. Without a
        ``reason``, the trial keeps the note of an earlier lost attempt, if any. Raises
        ``LeaseLost`` (and records nothing) if the claim's lease is no longer current.
        """
        if state not in FINISHED_TRIAL_STATES:
            raise ValueError(f"state must be one of {FINISHED_TRIAL_STATES}, got {state!r}")
        values = None if value is None else ([float(value)] if isinstance(value, int | float) else
                                             [float(v) for v in value])
        if state == "complete" and (not values or not all(math.isfinite(v) for v in values)):
            raise ValueError(f"a complete trial needs a finite value, got {value!r}; finish it as 'failed'")
        first = values[0] if values and math.isfinite(values[0]) else None
        with self.session("finishing a trial") as session:
            now = self._now()
            finished = session.execute(
                update(TrialModel)
                .where(TrialModel.id == claim.trial_row_id, TrialModel.lease_id == claim.lease_id,
                       TrialModel.state == "running")
                .values(state=state, value=first, result=json_safe(dict(result or {})),
                        # Without a reason of its own, a trial keeps the note of why an earlier attempt was lost.
                        reason=reason or TrialModel.reason,
                        finished_at=now, heartbeat_at=now, lease_expires_at=None, updated_at=now)
            )
            again = False
            if not finished.rowcount:  # type: ignore[attr-defined]
                again = self._finished_by(session, claim, state)
                if not again:
                    raise LeaseLost(
                        f"trial {claim.number} of study {claim.study_name!r}: refusing the {state} result of "
                        f"worker {claim.worker_id} (attempt {claim.attempt}): its lease is no longer current"
                    )
            clear_worker(session, claim.trial_row_id)
            mark_done_if_finished(session, claim.study_id, now)
        ostudy = claim.trial.study if claim.trial is not None else self._plain_study(claim)
        with self._optuna_errors("telling Optuna the result"):
            # Told again (a retry after the connection dropped once our row was written): the careful path, which
            # leaves a trial Optuna already finished alone.
            tell_optuna(ostudy, claim.optuna_trial_id, claim.number, state,
                        values if state == "complete" else None, reason, expect_running=not again,
                        live=None if again else claim.trial)

    def _finished_by(self, session: Session, claim: Claim, state: str) -> bool:
        """Whether this very lease already finished the trial as ``state``: a ``finish_trial`` retried after the
        connection dropped between our commit and telling Optuna. Then only Optuna is still to be told."""
        row = session.execute(select(TrialModel.lease_id, TrialModel.state)
                              .where(TrialModel.id == claim.trial_row_id)).one_or_none()
        return row is not None and row.lease_id == claim.lease_id and row.state == state

    def release_trial(self, claim: Claim) -> bool:
        """Give a running trial back to the queue (Ctrl-C, SIGTERM) without counting an attempt; what this
        attempt recorded is deleted. ``False`` if the lease was already lost.

        Call it from the worker's loop, not from inside a signal handler: it takes the study's critical
        section, which the interrupted code may be holding.
        """
        with self._critical_section(claim.study_id):
            with self.session("releasing a trial") as session:
                released = session.execute(
                    update(TrialModel)
                    .where(TrialModel.id == claim.trial_row_id, TrialModel.lease_id == claim.lease_id,
                           TrialModel.state == "running")
                    .values(state="queued", worker_id=None, lease_id=None, heartbeat_at=None, lease_expires_at=None,
                            started_at=None, updated_at=self._now())
                )
                if not released.rowcount:  # type: ignore[attr-defined]
                    return False
                for model in (EpochModel, SanityModel):
                    session.execute(delete(model).where(model.trial_id == claim.trial_row_id,
                                                        model.attempt == claim.attempt))
                clear_worker(session, claim.trial_row_id)
            with self._optuna_errors("requeueing the trial in Optuna"):
                requeue_in_optuna(self._optuna_storage, claim.optuna_trial_id)
        return True

