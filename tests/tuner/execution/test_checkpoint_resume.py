"""training.checkpoint_every: a worker SIGKILLed after a checkpoint; attempt 2 resumes from it and ends with the
figures of an uninterrupted run; the checkpoint is dropped when the trial ends."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from storage import Store
from storage.models import CheckpointModel
from tests.tuner.execution.test_study_run import _wait, spec_dict, worker_proc
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.loop import run_trial
from tuner.engine.prepared import prepare
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.spec import parse_spec

EPOCHS = 120


def _doc(name: str) -> dict[str, Any]:
    doc = spec_dict(name, n_trials=1, epochs=EPOCHS)
    doc["training"].update({"checkpoint_every": 10, "scheduler": {"name": "cosine", "warmup_epochs": 3},
                            "grad_clip": 1.0})
    doc["search"]["controls"] = False
    return doc


def _checkpoints(store: Store) -> int:
    with store.session("counting checkpoints") as session:
        return int(session.scalar(select(func.count()).select_from(CheckpointModel)) or 0)


def figures(result: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on the interruption: every epoch's losses and accuracy, the best epoch, the test."""
    return {"epochs": [(e["epoch"], e["train_loss"], e["val_loss"], e["val_accuracy"]) for e in result["epochs"]],
            "value": result["value"], "best_epoch": result["best_epoch"], "test": result["test_loss"],
            "test_accuracy": result["test_accuracy"], "affinity": result["affinity"]["matrix"]}


def test_a_sigkilled_trial_resumes_from_its_checkpoint_with_the_same_figures(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    spec = parse_spec(_doc("resumed"))
    with Store(url) as store:
        study = create_or_resume(store, spec)
        victim = worker_proc(url, study.name, 0, 1.5)  # a real worker process, SIGKILLed after its first checkpoint
        try:
            _wait(lambda: _checkpoints(store) > 0, 120, "the first checkpoint", every=0.02)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
        finally:
            if victim.poll() is None:
                victim.kill()
        (killed,) = store.trials(study.id)
        assert killed.state == "running" and 0 < len(store.epochs(study.id, 0)) < EPOCHS  # killed mid-trial
        caplog.set_level(logging.INFO, logger="tuner.engine.loop")
        # The rescuer (in this process, 1 thread like the victim) claims the trial once its lease has expired.
        Worker(store, config=WorkerConfig(lease_timeout_s=60, heartbeat_s=5, threads=1, poll_s=0.2)).run([study.name])
        (trial,) = store.trials(study.id)
        assert trial.state == "complete" and trial.attempt == 2, (trial.state, trial.reason)
        assert "resumed from the checkpoint at epoch" in caplog.text  # attempt 2 did not start again at epoch 0
        stored = store.epochs(study.id, 0)
        assert [e.epoch for e in stored] == list(range(EPOCHS)) and {e.attempt for e in stored} == {2}
        assert _checkpoints(store) == 0  # dropped when the trial ended
        assert trial.result is not None
        resumed = figures(trial.result)
        # The same trial uninterrupted: its seed is the spec's plus its number, its λ the stored ones.
        prep = prepare(spec)
        whole = run_trial(prep, dict(trial.params), seed=spec.training.seed, callbacks=trial_callbacks(prep))
    assert resumed == figures(whole.to_dict())
