"""Every pruner the spec names constructs; scripted studies show median and Wilcoxon prune a clearly bad curve."""

from __future__ import annotations

import optuna
import pytest

from tests.search.factories import make_spec
from tuner.search import SearchBackend, make_backend, pruning_step


def _backend(name: str, warmup_epochs: int = 2) -> SearchBackend:
    return make_backend(make_spec("random", pruner={"name": name, "warmup_epochs": warmup_epochs}))


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("none", optuna.pruners.NopPruner),
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("wilcoxon", optuna.pruners.WilcoxonPruner),
    ],
)
def test_every_pruner_constructs_and_runs(name: str, cls: type) -> None:
    backend = _backend(name)
    pruner = backend.pruner()
    assert isinstance(pruner, cls)
    study = optuna.create_study(direction="maximize", sampler=backend.sampler(), pruner=pruner)
    for i in range(4):  # a tiny study through the epochs of the spec
        trial = backend.ask(study)
        for epoch in range(backend.spec.training.epochs):
            trial.report(0.5 + 0.05 * epoch - 0.1 * i, pruning_step(epoch))
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, 0.7 - 0.1 * i)
    assert len(study.trials) == 4


def test_pruning_step_counts_epochs_done() -> None:
    assert [pruning_step(e) for e in range(3)] == [1, 2, 3]


def _good_trials(study: optuna.Study, backend: SearchBackend, n: int, epochs: int = 6) -> None:
    for i in range(n):
        trial = backend.ask(study)
        for epoch in range(epochs):
            trial.report(0.8 + 0.02 * epoch + 0.01 * i, pruning_step(epoch))
        study.tell(trial, 0.9 + 0.01 * i)


def test_median_prunes_a_clearly_bad_trial_after_warmup() -> None:
    backend = _backend("median", warmup_epochs=2)
    study = optuna.create_study(direction="maximize", sampler=backend.sampler(), pruner=backend.pruner())
    _good_trials(study, backend, 5)  # MedianPruner waits for 5 finished trials
    bad = backend.ask(study)
    verdicts = []
    for epoch in range(3):
        bad.report(0.1, pruning_step(epoch))
        verdicts.append(bad.should_prune())
    assert verdicts == [False, True, True]  # never before warmup_epochs epochs are done


def test_median_does_not_prune_a_good_trial() -> None:
    backend = _backend("median", warmup_epochs=0)
    study = optuna.create_study(direction="maximize", sampler=backend.sampler(), pruner=backend.pruner())
    _good_trials(study, backend, 5)
    good = backend.ask(study)
    for epoch in range(6):
        good.report(0.95, pruning_step(epoch))
        assert not good.should_prune()


def test_wilcoxon_prunes_a_curve_below_the_best() -> None:
    backend = _backend("wilcoxon", warmup_epochs=2)
    study = optuna.create_study(direction="maximize", sampler=backend.sampler(), pruner=backend.pruner())
    _good_trials(study, backend, 1)
    bad = backend.ask(study)
    verdicts = []
    for epoch in range(6):
        bad.report(0.2 + 0.01 * epoch, pruning_step(epoch))
        verdicts.append(bad.should_prune())
    assert not verdicts[0]
    assert verdicts[-1]
