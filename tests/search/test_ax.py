"""AxSampler: rebuilt from the stored history on every ask, so a study survives a restart."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.search.factories import THIRD_PARTY_WARNINGS, in_bounds, make_spec, new_study, run_rounds
from tuner.search import AX_INIT_TRIALS, AxSampler, make_backend
from tuner.search._ax import ax_metric_names

pytestmark = THIRD_PARTY_WARNINGS


def test_ax_study_survives_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ax.db'}"
    backend = make_backend(make_spec("ax", tasks={"a": {}, "b": {"low": 0.01, "high": 2.0, "log": True}},
                                     controls=False))
    study = new_study(backend, storage=url, study_name="ax-restart")
    run_rounds(backend, study, 6)
    assert [t.system_attrs["ax:observed"] for t in study.trials] == [0, 1, 2, 3, 4, 5]
    del study

    # a new process: a new sampler, the study loaded from the file
    reloaded = optuna.load_study(study_name="ax-restart", storage=url, sampler=backend.sampler())
    trial = backend.ask(reloaded)
    attrs = reloaded.trials[-1].system_attrs
    assert attrs["ax:observed"] == 6
    assert attrs["ax:phase"] == "bayesopt"  # 6 ≥ AX_INIT_TRIALS: the client saw the whole history
    assert in_bounds(backend.spec, backend.lambdas_of(trial))


def test_pending_and_pruned_trials_reach_ax() -> None:
    backend = make_backend(make_spec("ax", tasks={"a": {}, "b": {}}, metric="val_loss"))  # minimise
    study = new_study(backend)
    run_rounds(backend, study, 3)  # 2 controls + 1 sampled
    pruned = backend.ask(study)
    pruned.report(5.0, 1)
    study.tell(pruned, state=TrialState.PRUNED)
    failed = backend.ask(study)
    study.tell(failed, state=TrialState.FAIL)
    backend.ask(study)  # left running, as on a parallel worker
    nxt = backend.ask(study)
    attrs = study.trials[nxt.number].system_attrs
    assert attrs["ax:observed"] == 4  # 3 complete + the pruned one at its last reported value; not the failed
    assert attrs["ax:pending"] == 1
    assert attrs["ax:phase"] == "initialization"


def test_minimising_study_reaches_bayesopt_in_bounds() -> None:
    backend = make_backend(make_spec("ax", tasks={"a": {}, "b": {}}, metric="val_loss", seed=4))
    study = new_study(backend)
    lambdas = run_rounds(backend, study, AX_INIT_TRIALS + 2)
    assert study.trials[-1].system_attrs["ax:phase"] == "bayesopt"
    assert all(in_bounds(backend.spec, lam) for lam in lambdas)


def test_ax_sampler_refuses_stepped_distributions() -> None:
    with pytest.raises(ValueError, match="continuous floats"):
        AxSampler({"a": optuna.distributions.FloatDistribution(0.0, 1.0, step=0.1)})


def test_objective_names_reach_ax_in_its_grammar_and_a_mismatched_study_is_refused() -> None:
    assert ax_metric_names(["val_accuracy", "val_loss:a_b", "val_loss:a:b", "9lives"]) == [
        "val_accuracy", "val_loss_a_b", "val_loss_a_b_2", "m_9lives"]
    sampler = AxSampler({"a": optuna.distributions.FloatDistribution(0.0, 1.0)}, metric="val_accuracy")
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    with pytest.raises(ValueError, match="optimises 1 objective"):
        study.ask().suggest_float("a", 0.0, 1.0)
