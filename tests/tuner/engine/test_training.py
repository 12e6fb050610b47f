"""One trial: determinism, per-epoch per-task metrics, sanity failure, pruning, early stopping, objective."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pytest

from tuner.engine.callbacks.base import TrialCallback, TrialPruned
from tuner.engine.loop import run_trial
from tuner.engine.losses import MAIN
from tuner.engine.prepared import prepare
from tuner.results import EpochMetrics, SanityResult, TrialResult
from tuner.spec import SpecError, StudySpec

SpecFactory = Callable[..., StudySpec]
LAMBDAS = {"helpful": 1.0, "harmful": 0.5}


def epoch_figures(result: TrialResult) -> list[dict[str, Any]]:
    """Per-epoch metrics without wall-clock times."""
    return [{k: v for k, v in asdict(e).items() if k != "seconds"} for e in result.epochs]


@pytest.fixture
def spec(synthetic_spec: SpecFactory) -> StudySpec:
    return synthetic_spec(training={"epochs": 3})


def test_same_seed_same_result_different_seed_different(spec: StudySpec) -> None:
    prep = prepare(spec)
    a = run_trial(prep, LAMBDAS, seed=3)
    b = run_trial(prepare(spec), LAMBDAS, seed=3)
    c = run_trial(prep, LAMBDAS, seed=4)

    assert a.status == b.status == c.status == "complete"
    assert a.value == b.value
    assert a.test_accuracy == b.test_accuracy
    assert a.test_loss == b.test_loss
    assert epoch_figures(a) == epoch_figures(b)
    assert epoch_figures(a) != epoch_figures(c)
    assert [e.train_loss for e in a.epochs] != [e.train_loss for e in c.epochs]


def test_seed_defaults_to_the_spec(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec(training={"epochs": 2, "seed": 7}))
    a = run_trial(prep, LAMBDAS)
    assert a.seed == 7
    assert epoch_figures(a) == epoch_figures(run_trial(prep, LAMBDAS, seed=7))


def test_lambda_changes_the_run(spec: StudySpec) -> None:
    prep = prepare(spec)
    a = run_trial(prep, {"helpful": 0.0, "harmful": 0.0}, seed=0)
    b = run_trial(prep, {"helpful": 2.0, "harmful": 0.0}, seed=0)
    assert [e.train_loss[MAIN] for e in a.epochs] != [e.train_loss[MAIN] for e in b.epochs]


def test_per_epoch_per_task_metrics(spec: StudySpec) -> None:
    result = run_trial(prepare(spec), LAMBDAS, seed=0)

    assert result.status == "complete"
    assert [e.epoch for e in result.epochs] == [0, 1, 2]
    keys = {MAIN, "helpful", "harmful", "total"}
    for e in result.epochs:
        assert set(e.train_loss) == keys
        assert set(e.val_loss) == keys
        assert 0.0 <= e.val_accuracy <= 1.0
        assert e.seconds > 0
        # losses are unweighted per task; the total is the weighted sum (exactly, since both are means)
        for losses in (e.train_loss, e.val_loss):
            expected = losses[MAIN] + sum(lam * losses[k] for k, lam in LAMBDAS.items())
            assert losses["total"] == pytest.approx(expected, rel=1e-5)
    # training does something: the main task's training loss falls
    assert result.epochs[-1].train_loss[MAIN] < result.epochs[0].train_loss[MAIN]


def test_test_accuracy_and_best_epoch(spec: StudySpec) -> None:
    result = run_trial(prepare(spec), LAMBDAS, seed=0)
    assert result.test_accuracy is not None and 0.0 <= result.test_accuracy <= 1.0
    assert result.test_accuracy > 0.3  # four classes: clearly above chance after 3 epochs
    assert set(result.test_loss) == {MAIN, "helpful", "harmful", "total"}
    assert result.best_epoch is not None
    best = result.epochs[result.best_epoch]
    assert result.value == best.val_accuracy == result.val_accuracy
    assert result.value == max(e.val_accuracy for e in result.epochs)
    # ties go to the earliest epoch
    assert result.best_epoch == min(e.epoch for e in result.epochs if e.val_accuracy == result.value)
    assert result.seconds > 0


def test_test_metrics_come_from_the_best_epoch(synthetic_spec: SpecFactory) -> None:
    # a high lr overfits 200 samples fast, so the best validation epoch comes before the last one
    long = run_trial(prepare(synthetic_spec(training={"epochs": 10, "lr": 0.03})), LAMBDAS, seed=0)
    assert long.best_epoch is not None and long.best_epoch < 9
    # the same run cut at the best epoch ends with exactly the weights the long run must have restored
    cut = run_trial(prepare(synthetic_spec(training={"epochs": long.best_epoch + 1, "lr": 0.03})), LAMBDAS, seed=0)
    assert epoch_figures(cut) == epoch_figures(long)[: long.best_epoch + 1]
    assert cut.test_loss == long.test_loss
    assert cut.test_accuracy == long.test_accuracy


def test_lambdas_are_completed_and_checked(synthetic_spec: SpecFactory) -> None:
    spec = synthetic_spec(training={"epochs": 1}, aux_tasks=[
        {"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse", "lambda": {"fixed": 0.1}}])
    prep = prepare(spec)
    result = run_trial(prep, {"helpful": 0.5}, seed=0)
    assert result.lambdas == {"helpful": 0.5, "harmful": 0.1}
    with pytest.raises(SpecError):
        run_trial(prep, {"helpful": 5.0}, seed=0)
    with pytest.raises(SpecError):
        run_trial(prep, {"helpfull": 0.5}, seed=0)


class Recorder(TrialCallback):
    """Records the hooks it sees; raises ``TrialPruned`` after epoch ``prune_after``."""

    def __init__(self, prune_after: int | None = None):
        self.prune_after = prune_after
        self.sanity: list[SanityResult] = []
        self.epochs: list[EpochMetrics] = []

    def on_sanity_end(self, result: SanityResult) -> None:
        self.sanity.append(result)

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self.epochs.append(metrics)
        if self.prune_after is not None and metrics.epoch >= self.prune_after:
            raise TrialPruned()


def test_failed_sanity_trains_nothing(synthetic_spec: SpecFactory) -> None:
    spec = synthetic_spec(training={"lr": 1e6, "optimizer": "sgd", "epochs": 5})
    rec = Recorder()
    result = run_trial(prepare(spec), {}, seed=0, callbacks=[rec])

    assert result.status == "failed_sanity"
    assert result.epochs == [] and rec.epochs == []
    assert rec.sanity == [result.sanity]
    assert result.sanity is not None and result.reason == result.sanity.reason != ""
    assert result.value is None and result.test_accuracy is None and result.best_epoch is None
    json.dumps(result.to_dict(), allow_nan=False)


def test_pruned_by_callback_after_epoch_1(synthetic_spec: SpecFactory) -> None:
    spec = synthetic_spec(training={"epochs": 6})
    rec = Recorder(prune_after=1)
    result = run_trial(prepare(spec), LAMBDAS, seed=0, callbacks=[rec])

    assert result.status == "pruned"
    assert [e.epoch for e in result.epochs] == [0, 1]
    assert rec.epochs == result.epochs
    assert len(rec.sanity) == 1 and rec.sanity[0].passed
    # a pruned trial still reports its best value so far
    assert result.value == max(e.val_accuracy for e in result.epochs)


def test_every_callback_sees_every_epoch(spec: StudySpec) -> None:
    first, second = Recorder(), Recorder()
    result = run_trial(prepare(spec), LAMBDAS, seed=0, callbacks=[first, second])
    assert result.status == "complete"
    assert first.epochs == second.epochs == result.epochs


def test_patience_stops_early(synthetic_spec: SpecFactory) -> None:
    # a high learning rate on few samples: validation accuracy peaks within a few epochs, then wobbles
    spec = synthetic_spec(training={"epochs": 60, "lr": 0.03, "patience": 2})
    result = run_trial(prepare(spec), LAMBDAS, seed=0)

    assert result.status == "complete"
    assert len(result.epochs) < 60
    assert result.best_epoch is not None
    assert len(result.epochs) == result.best_epoch + 1 + 2  # stopped `patience` epochs after the best
    best = result.epochs[result.best_epoch].val_accuracy
    assert all(e.val_accuracy <= best for e in result.epochs[result.best_epoch + 1:])


def test_val_loss_objective_is_minimised(synthetic_spec: SpecFactory) -> None:
    spec = synthetic_spec(training={"epochs": 4}, objective={"metric": "val_loss"})
    assert spec.objective.direction == "minimize"
    result = run_trial(prepare(spec), LAMBDAS, seed=0)

    assert (result.metric, result.direction) == ("val_loss", "minimize")
    main_val = [e.val_loss[MAIN] for e in result.epochs]
    assert result.value == min(main_val)  # the main task's loss, never the weighted total
    assert result.best_epoch == main_val.index(min(main_val))
    assert result.value != min(e.val_loss["total"] for e in result.epochs)


def test_objective_ignores_lambda_scale(spec: StudySpec) -> None:
    # the objective is the main task's accuracy; the weighted total grows with λ but must not leak into it
    result = run_trial(prepare(spec), {"helpful": 0.0, "harmful": 2.0}, seed=0)
    assert result.metric == "val_accuracy" and result.direction == "maximize"
    assert result.value == max(e.val_accuracy for e in result.epochs)


def test_to_dict_is_json(spec: StudySpec) -> None:
    result = run_trial(prepare(spec), LAMBDAS, seed=0)
    d = result.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["status"] == "complete"
    assert back["lambdas"] == LAMBDAS
    assert back["value"] == result.value
    assert len(back["epochs"]) == 3
    assert set(back["epochs"][0]["train_loss"]) == {MAIN, "helpful", "harmful", "total"}
    assert back["sanity"]["passed"] is True


def test_prepare_places_data_on_the_spec_device(synthetic_spec: SpecFactory) -> None:
    prep = prepare(synthetic_spec(training={"device": "cpu"}))
    assert prep.device.type == "cpu"
    assert prep.data.train.x.device.type == "cpu"
    assert set(prep.data.train.aux) >= {"helpful", "harmful"}
    assert len(prep.data.train) == 200 and len(prep.data.val) == 200 and len(prep.data.test) == 400
