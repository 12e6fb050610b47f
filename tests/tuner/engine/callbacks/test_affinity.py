"""Task affinity (TAG lookahead): the probe measures what it claims, changes no training, and on ``synthetic``
ranks helpful > neutral > harmful, harmful's CI below 0 (store, report, CLI)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import pytest
import torch
from typer.testing import CliRunner

from api.dashboard.trust_figures import affinity_figure
from storage import Store
from tuner.analysis.affinity_report import NO_ADVICE, affinity_report
from tuner.cli.main import app
from tuner.engine.callbacks import trial_callbacks
from tuner.engine.callbacks.affinity import AffinityProbe, affinity_probe
from tuner.engine.callbacks.base import TrainStep
from tuner.engine.loop import run_trial
from tuner.engine.losses import MAIN, compute_losses
from tuner.engine.prepared import PreparedStudy, prepare
from tuner.execution.submit import create_or_resume
from tuner.execution.worker import Worker, WorkerConfig
from tuner.results import TrialResult
from tuner.spec import StudySpec, parse_spec

TASKS = [{"name": "helpful", "loss": "bce"}, {"name": "neutral", "loss": "bce"}, {"name": "harmful", "loss": "mse"}]
ALL_ONE = {"helpful": 1.0, "neutral": 1.0, "harmful": 1.0}


def probed(prep: PreparedStudy, lambdas: dict[str, float], seed: int) -> TrialResult:
    """A trial with the callbacks its spec asks for, the probe among them (``run_trial`` builds none)."""
    return run_trial(prep, lambdas, seed=seed, callbacks=trial_callbacks(prep))


def test_the_probe_is_one_plain_step_on_each_task_alone(synthetic_spec: Callable[..., StudySpec]) -> None:
    prep = prepare(synthetic_spec(aux_tasks=TASKS))
    model = prep.new_model(0)
    batch = prep.data.train.take(torch.arange(32))
    losses = compute_losses(model(batch.x), batch.y, batch.aux, prep.task_losses, ALL_ONE, prep.temperatures)
    lr = 0.05
    probe = AffinityProbe(prep.task_losses, prep.temperatures, every=1, lr=lr)
    measured = probe.probe(TrainStep(0, 0, model, batch, losses, losses.total))
    for src in (MAIN, "helpful", "harmful"):
        grads = torch.autograd.grad(losses.terms[src], list(model.trunk.parameters()), retain_graph=True)
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p, g in zip(moved.trunk.parameters(), grads, strict=True):
                p -= lr * g
            after = compute_losses(moved(batch.x), batch.y, batch.aux, prep.task_losses, ALL_ONE,
                                   prep.temperatures).terms
        for dst in (MAIN, "helpful", "neutral", "harmful"):
            expected = 1 - float(after[dst]) / float(losses.terms[dst].detach())
            assert measured[src][dst] == pytest.approx(expected, rel=1e-4, abs=1e-7), (src, dst)
    assert measured[MAIN][MAIN] > 0  # a step on the main loss lowers it
    assert all(p.grad is None for p in model.parameters())  # it read gradients, it set none
    summary = probe.summary()
    assert summary["probes"] == 1 and summary["to_main"]["harmful"] == measured["harmful"][MAIN]


def test_training_is_the_same_with_the_probe_on(synthetic_spec: Callable[..., StudySpec]) -> None:
    on = probed(prepare(synthetic_spec(aux_tasks=TASKS, affinity={"every": 1})), ALL_ONE, seed=3)
    off = probed(prepare(synthetic_spec(aux_tasks=TASKS, affinity={"every": 0})), ALL_ONE, seed=3)
    assert off.affinity is None and on.affinity is not None
    assert [e.val_loss for e in on.epochs] == [e.val_loss for e in off.epochs]
    assert on.test_accuracy == off.test_accuracy
    steps = 3 * -(-200 // 32)  # 3 epochs of 200 samples in batches of 32
    assert on.affinity["probes"] == steps and set(on.affinity["to_main"]) == {"helpful", "neutral", "harmful"}
    assert affinity_probe(prepare(synthetic_spec(aux_tasks=[]))) is None


@pytest.fixture(scope="module")
def affinity_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A small search on synthetic with all three tasks; the probe every 2 steps on batches of 100.

    TAG's estimate is a ratio of minibatch losses: on batches of 32 the harmful task's first-order term is so
    noisy that it swaps places with neutral's (both near 0) on some data seeds; on batches of 100 the ranking
    held on every one of 8 data seeds measured (harmful ≈ −1e-5, neutral ≈ −2e-6, helpful ≈ +2e-5).
    """
    url = f"sqlite:///{tmp_path_factory.mktemp('affinity') / 'affinity.db'}"
    spec = parse_spec({
        "name": "affinity", "workload": {"name": "synthetic", "params": {"n_train": 600, "n_val": 200,
                                                                          "n_test": 200}},
        "aux_tasks": TASKS, "search": {"algorithm": "random", "n_trials": 5, "seed": 0},
        "training": {"epochs": 12, "batch_size": 100, "lr": 0.003}, "affinity": {"every": 2},
    })
    with Store(url) as store:
        create_or_resume(store, spec)
        Worker(store, config=WorkerConfig(poll_s=0.05)).run(["affinity"])
    return url, "affinity"


def test_affinity_ranks_helpful_over_neutral_over_harmful(affinity_study: tuple[str, str]) -> None:
    url, name = affinity_study
    with Store(url) as store:
        trials = store.trials(store.get_study(name).id)
    report = affinity_report(trials)
    assert report is not None
    assert report["ranking"] == ["helpful", "neutral", "harmful"], report["summary"]
    by_task = {row["task"]: row for row in report["summary"]}
    assert by_task["helpful"]["affinity"] > 0 and by_task["helpful"]["ci_low"] > 0
    assert by_task["harmful"]["affinity"] < 0 and by_task["harmful"]["ci_high"] < 0
    # 5 trials: the λ slice cannot agree yet (it needs 5 trials that trained the task), so no advice from
    # the affinity alone; tests/tuner/analysis/test_affinity_advice.py covers when it advises
    assert by_task["helpful"]["advice"] == by_task["harmful"]["advice"] == NO_ADVICE
    assert "helpful" not in report["drop_candidates"]
    # The λ = 0 control trains no aux head: it is listed, but no task's affinity averages it in.
    assert len(report["trials"]) == 5 and all(row["trials"] == 4 for row in report["summary"])
    figure = affinity_figure(report)
    heat = figure["data"][0]
    assert heat["type"] == "heatmap" and heat["y"] == ["main", "helpful", "neutral", "harmful"]
    assert heat["z"][1][0] == pytest.approx(by_task["helpful"]["affinity"])


def test_the_affinity_command(affinity_study: tuple[str, str]) -> None:
    url, name = affinity_study
    done = CliRunner().invoke(app, ["affinity", name, "--db", url, "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["ranking"] == ["helpful", "neutral", "harmful"]
    assert any(line.startswith("harmful: no advice (affinity -") and "confirm with --ablate" in line
               for line in report["advice"])


def test_a_domain_task_is_a_source_but_never_a_target() -> None:
    """An mmd task's loss needs a target-domain batch the probe must not draw: training stays identical and the
    task's column of the matrix stays empty."""
    doc = {"name": "domain", "workload": {"name": "digits", "params": {
               "n_train": 120, "n_val": 60, "target_shift": "blur", "n_target": 120, "n_target_val": 60}},
           "aux_tasks": [{"name": "loop", "loss": "bce"}, {"name": "domain", "loss": "mmd"}],
           "training": {"epochs": 2, "batch_size": 32}, "sanity": {"enabled": False}}
    on = probed(prepare(parse_spec({**doc, "affinity": {"every": 1}})), {"loop": 1.0, "domain": 0.5}, seed=1)
    off = probed(prepare(parse_spec({**doc, "affinity": {"every": 0}})), {"loop": 1.0, "domain": 0.5}, seed=1)
    assert [e.val_loss for e in on.epochs] == [e.val_loss for e in off.epochs] and on.target_test == off.target_test
    matrix = on.affinity["matrix"]  # type: ignore[index]
    assert matrix["domain"][MAIN] is not None and all(row["domain"] is None for row in matrix.values())
