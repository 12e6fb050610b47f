"""Pruning without a write per epoch (issue #18): a worker's reporter decides against a snapshot of the other
trials, in memory, and writes the reported values with its batched epochs. On a real SQLite store, counting the
statements every engine sends (SQLAlchemy events); and the warm-up that follows ``training.epochs``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from sqlalchemy import event
from sqlalchemy.engine import Engine

from storage import Store
from tuner.engine.callbacks.base import TrialPruned
from tuner.execution.submit import create_or_resume
from tuner.execution.trials import StudyContext, TrialLease
from tuner.results import EpochMetrics
from tuner.search import curve_warmup, make_backend, warmup_range
from tuner.spec import parse_spec

EPOCHS = 10


def pruned_spec_doc(name: str = "snap", **pruner: object) -> dict:
    return {
        "name": name,
        "workload": {"name": "synthetic", "params": {"n_train": 64, "n_val": 64, "n_test": 64}},
        "aux_tasks": [{"name": "helpful", "loss": "bce"}],
        "search": {"algorithm": "random", "n_trials": 8, "seed": 0, "controls": False,
                   "pruner": {"name": "median", **pruner}},
        "training": {"epochs": EPOCHS},
    }


class WriteCounter:
    """Counts the write statements (INSERT, UPDATE, DELETE) every engine of this process sends."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def __call__(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.writes.append(statement)


@pytest.fixture
def writes() -> Iterator[WriteCounter]:
    counter = WriteCounter()
    event.listen(Engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(Engine, "before_cursor_execute", counter)


def metrics(epoch: int, accuracy: float) -> EpochMetrics:
    return EpochMetrics(epoch=epoch, train_loss={"total": 1.0}, val_loss={"main": 1.0}, val_accuracy=accuracy,
                        seconds=0.01)


def test_a_pruned_trial_writes_nothing_per_epoch_and_waits_for_the_warm_up(tmp_path: Path,
                                                                           writes: WriteCounter) -> None:
    spec = parse_spec(pruned_spec_doc())
    assert warmup_range(spec) == (2, 5)  # the curves decide between 2 epochs and half of the 10
    warmup = 3  # the complete trials' median curve has made half its rise at step 3
    with Store(f"sqlite:///{tmp_path / 'p.db'}") as store:
        record = create_or_resume(store, spec)
        backend = make_backend(spec)
        ctx = StudyContext(record, spec, backend, backend.sampler(0), backend.pruner())

        def lease() -> TrialLease:
            claim = store.claim_trial(record.id, "w", backend.suggest, sampler=ctx.sampler, pruner=ctx.pruner)
            assert claim is not None
            return TrialLease(store, ctx, claim, threading.Event(), heartbeat_s=600, flush_s=600)

        for _ in range(5):  # the median pruner's 5 start-up trials: curves rising to 0.8 by step 4, then flat
            done = lease()
            for epoch in range(EPOCHS):
                done.reporter.on_epoch_end(metrics(epoch, 0.5 + 0.1 * min(epoch, 3)))
            done.reporter.flush()
            store.finish_trial(done.claim, "complete", 0.8)
            done.end()

        bad = lease()  # at chance from the first epoch on
        before = len(writes.writes)
        pruned_at = None
        for epoch in range(EPOCHS):
            try:
                bad.reporter.on_epoch_end(metrics(epoch, 0.25))
            except TrialPruned:
                pruned_at = epoch
                break
            assert len(writes.writes) == before, f"epoch {epoch} wrote {writes.writes[before:]}"
        # Not before the warm-up the curves set (a fixed 2-epoch one pruned the eventual winner); at its end, at once.
        assert pruned_at == warmup - 1
        assert bad.reporter.pruning is not None and bad.reporter.pruning.reads == 1
        flushed = writes.writes[before:]  # the one flush at the prune: epochs and reported values together
        assert any("trial_intermediate_values" in s for s in flushed)
        assert len({s for s in flushed if s.lstrip().upper().startswith("INSERT INTO AUXTUNE_EPOCHS")}) <= 1
        store.finish_trial(bad.claim, "pruned", None)
        bad.end()
        frozen = store.optuna_storage.get_trial(bad.claim.optuna_trial_id)
        assert frozen.state == TrialState.PRUNED
        assert frozen.intermediate_values == {1: 0.25, 2: 0.25, 3: 0.25}
        assert frozen.value == 0.25  # a pruned trial's value: its last report, as Optuna's tell gives it
        assert len(store.epochs(record.id, bad.claim.number)) == warmup


def test_the_warm_up_follows_the_epochs_unless_given() -> None:
    doc = pruned_spec_doc()
    for epochs, expected in ((1, (1, 1)), (4, (2, 2)), (10, (2, 5)), (40, (2, 20))):
        doc["training"]["epochs"] = epochs
        assert warmup_range(parse_spec(doc)) == expected
    assert warmup_range(parse_spec(pruned_spec_doc(warmup_epochs=0))) == (0, 0)
    assert warmup_range(parse_spec(pruned_spec_doc(warmup_epochs=7))) == (7, 7)


def test_the_warm_up_lasts_while_the_curves_sit_at_chance() -> None:
    def trial(curve: list[float]) -> object:
        return create_trial(value=curve[-1], params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                            intermediate_values=dict(enumerate(curve, start=1)))

    at_chance_then_rising = [0.25] * 10 + [0.25 + 0.05 * i for i in range(1, 11)]  # at chance for 10 epochs of 20
    assert curve_warmup([trial(at_chance_then_rising)] * 3, maximize=True) == 15  # half of its 0.5 rise
    assert curve_warmup([trial([0.25, 0.7, 0.8, 0.8])] * 3, maximize=True) == 2
    assert curve_warmup([trial([2.0, 1.9, 1.0, 0.9])] * 3, maximize=False) == 3  # a loss falls
    assert curve_warmup([], maximize=True) is None
