"""One trial: sanity gate → full training with per-epoch per-task metrics → test at the best epoch.

The loop is fixed; what varies goes through ``TrialCallback`` hooks (``tuner.engine.callbacks.base``), dispatched
from one place: Optuna's report/should_prune, heartbeats, metric logging and the affinity probe all plug in there.
The loop runs the callbacks it is given and no others: ``tuner.engine.callbacks.trial_callbacks`` adds those a
study's trials run. Which epoch is best, and early stopping, are ``tuner.engine.best_epoch``'s.
The objective is the main task's validation metric, never the weighted total (λ changes its scale).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterable, Sequence
from functools import partial

import torch

from tuner.engine.batches import chunks
from tuner.engine.best_epoch import BestEpoch
from tuner.engine.callbacks.base import TrainStep, TrialCallback, TrialPruned, dispatch, stop_requested
from tuner.engine.checkpoint import TrialCheckpoints
from tuner.engine.controls import StepControls, autocast
from tuner.engine.domain import target_metrics
from tuner.engine.gpu import apply_determinism
from tuner.engine.losses import MAIN, compute_losses
from tuner.engine.model import MultiTaskModel
from tuner.engine.prepared import PreparedStudy
from tuner.engine.sanity import sanity_gate
from tuner.results import EpochMetrics, TrialResult
from tuner.spec.transfer import TRUNK_MODE_PARAM
from tuner.workloads import Split

logger = logging.getLogger(__name__)


@torch.no_grad()
def evaluate(prep: PreparedStudy, model: MultiTaskModel, split: Split | Iterable[Split],
             lambdas: dict[str, float]) -> tuple[dict[str, float], float]:
    """Per-task mean losses (plus weighted ``total``) and main-task accuracy over ``split`` (tensors, or the batches
    of a split: ``prep.batches("val")``)."""
    model.eval()
    sums: dict[str, float] = {}
    correct = 0
    n = 0
    for part in chunks(split) if isinstance(split, Split) else split:
        n += len(part)
        with autocast(prep.spec.training, part.x.device):
            out = model(part.x)
            bd = compute_losses(out, part.y, part.aux, prep.task_losses, lambdas, prep.temperatures)
        for k, v in bd.detached().items():
            sums[k] = sums.get(k, 0.0) + v * len(part)
        correct += int((out[MAIN].argmax(-1) == part.y).sum())
    model.train()
    return {k: v / n for k, v in sums.items()}, correct / n


def run_trial(
    prep: PreparedStudy,
    lambdas: dict[str, float],
    seed: int | None = None,
    callbacks: Sequence[TrialCallback] = (),
    trunk_mode: str | None = None,
    data_seed: int | None = None,
    checkpoints: TrialCheckpoints | None = None,
) -> TrialResult:
    """Run one trial of ``prep.spec`` with ``lambdas`` (complete: fixed λ filled in by the caller or here).

    Deterministic given (spec, λ, seed, trunk mode) on the CPU. The sanity gate runs first; a failed gate ends
    the trial with status ``failed_sanity`` and its reason, and costs no full training. ``trunk_mode`` (a trunk
    started from a saved model) defaults to the spec's first mode. Only ``callbacks`` run: pass
    ``tuner.engine.callbacks.trial_callbacks(prep, ...)`` for the ones the spec asks for (the affinity probe).
    ``data_seed`` seeds the minibatch order and augmentation (default: ``prep.data_seed(seed)``). The gate draws
    from generators of its own, so a trial trains the same with the gate on or off. With ``checkpoints``
    (``tuner.engine.checkpoint``) the trial resumes from its last checkpoint, if any (after its gate), and saves
    one as ``training.checkpoint_every`` says; the optimiser steps as ``tuner.engine.controls`` says.
    """
    spec = prep.spec
    lambdas = spec.complete_lambdas(lambdas)
    seed = spec.training.seed if seed is None else seed
    metric, direction = spec.objective.metric, str(spec.objective.direction)
    start = time.perf_counter()
    result = TrialResult(status="complete", lambdas=lambdas, seed=seed, metric=metric, direction=direction)
    if spec.trunk is not None:
        result.trunk_mode = spec.trunk_mode_of({} if trunk_mode is None else {TRUNK_MODE_PARAM: trunk_mode})

    apply_determinism(spec.training.deterministic)
    model = prep.new_model(seed, result.trunk_mode)
    if spec.sanity.enabled:
        result.sanity = sanity_gate(model, prep.sanity_batch(seed), prep.task_losses, lambdas,
                                    spec.training, spec.sanity, prep.temperatures,
                                    partial(stop_requested, callbacks), prep.gate_optimizer)
        dispatch(callbacks, "on_sanity_end", result.sanity)
        if not result.sanity.passed:
            result.status = "failed_sanity"
            result.reason = result.sanity.reason
            result.seconds = time.perf_counter() - start
            return result

    controls = StepControls(prep.workload, model, spec.training, prep.device)
    train = prep.batches("train").restart(prep.data_seed(seed) if data_seed is None else data_seed)
    best: BestEpoch[dict[str, torch.Tensor]] = BestEpoch(result, spec.training.patience)
    steps, first = 0, 0
    if checkpoints is not None:
        state = checkpoints.resume(model, controls, train, best, callbacks)
        if state is not None:
            steps, first = state.steps, state.epoch + 1
            logger.info("trial (seed %d): resumed from the checkpoint at epoch %d", seed, state.epoch)
            dispatch(callbacks, "on_resume", list(result.epochs))
    for epoch in range(first, spec.training.epochs):
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        for batch in train.epoch():
            with controls.autocast():
                bd = compute_losses(model(batch.x), batch.y, batch.aux, prep.task_losses, lambdas,
                                    prep.temperatures)
            step = TrainStep(steps, epoch, model, batch, bd, bd.total)
            dispatch(callbacks, "on_step", step)
            steps += 1
            controls.backward(step.loss)
            for k, v in bd.terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(batch)
            sums["total"] = sums.get("total", 0.0) + float(bd.total.detach()) * len(batch)
        controls.end_epoch()
        val_loss, val_acc = evaluate(prep, model, prep.batches("val"), lambdas)
        m = EpochMetrics(epoch=epoch, train_loss={k: v / len(train) for k, v in sums.items()},
                         val_loss=val_loss, val_accuracy=val_acc, seconds=time.perf_counter() - t0,
                         target=target_metrics(model, prep.data.target, "val"))
        best.book(m, lambda: copy.deepcopy(model.state_dict()))
        try:
            dispatch(callbacks, "on_epoch_end", m)
        except TrialPruned:
            result.status = "pruned"
            break
        if best.patience_spent:
            break
        if checkpoints is not None:
            checkpoints.after_epoch(epoch, steps, model, controls, train, best, callbacks)

    if best.state is not None:
        model.load_state_dict(best.state)
    dispatch(callbacks, "on_train_end", model)
    result.test_loss, result.test_accuracy = evaluate(prep, model, prep.batches("test"), lambdas)
    result.target_test = target_metrics(model, prep.data.target, "test")
    dispatch(callbacks, "on_test_end", result)
    result.seconds = time.perf_counter() - start
    return result
