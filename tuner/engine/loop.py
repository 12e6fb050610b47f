"""One trial: sanity gate → full training with per-epoch per-task metrics → test at the best epoch.

The loop is fixed; what varies goes through ``TrialCallback`` hooks, dispatched from one place
(``_dispatch``): Optuna's report/should_prune, heartbeats and metric logging all plug in there.
The objective is the main task's validation metric, never the weighted total (λ changes its scale).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

import torch
from torch import nn

from tuner.engine.domain import target_metrics, with_target_domain
from tuner.engine.losses import MAIN, LossBreakdown, compute_losses
from tuner.engine.model import MultiTaskModel, build_model, resolve_device
from tuner.engine.sanity import make_optimizer, sanity_gate
from tuner.engine.transfer import SavedModel, rebuild_trunk, start_trunk, tie_kd_heads
from tuner.results import EpochMetrics, SanityResult, TrialResult
from tuner.spec import StudySpec
from tuner.spec.references import workload_aux_tasks
from tuner.spec.transfer import TRUNK_MODE_PARAM
from tuner.workloads import Split, Workload, WorkloadData, make_workload

logger = logging.getLogger(__name__)


class TrialPruned(Exception):
    """Raised by a callback (e.g. a pruner) to stop the trial after an epoch."""


@dataclass
class TrainStep:
    """One optimisation step, handed to ``on_step`` after the forward pass and before ``loss.backward()``.

    ``losses`` keeps its graph, so a hook can take gradients of single terms (the affinity probe); ``loss`` is
    what the loop backpropagates: a learned-weighting arm (``tuner.engine.callbacks.weighting``) replaces it.
    """

    number: int
    epoch: int
    model: MultiTaskModel
    batch: Split
    losses: LossBreakdown
    loss: torch.Tensor


class TrialCallback:
    """Hooks into a trial. Override what you need; raise ``TrialPruned`` from ``on_epoch_end`` to stop."""

    def should_stop(self) -> bool:
        """Asked between the sanity gate's steps, before any other hook has run: True (or an exception of the
        callback's own, which then leaves ``run_trial``) stops the trial there. A worker's reporter uses it so
        that SIGTERM or a cancelled study does not wait for a long gate to finish."""
        return False

    def on_sanity_end(self, result: SanityResult) -> None:
        pass

    def on_step(self, step: TrainStep) -> None:
        pass

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        pass

    def on_train_end(self, model: MultiTaskModel) -> None:
        """Training is over; ``model`` holds its best epoch's weights and is about to be tested."""


def _dispatch(callbacks: Sequence[TrialCallback], hook: str, arg: Any) -> None:
    for cb in callbacks:
        getattr(cb, hook)(arg)


def stop_requested(callbacks: Sequence[TrialCallback]) -> bool:
    """Whether any callback asks to stop now (``TrialCallback.should_stop``)."""
    return any(cb.should_stop() for cb in callbacks)


@dataclass
class PreparedStudy:
    """A spec with its data built and moved to the device, reused across the trials of one worker.

    ``trunk`` is the saved model whose trunk new models start from, and a kd task with a teacher has the
    teacher's predictions among the splits' targets: both are filled by ``tuner.engine.transfer.with_saved_models``.
    """

    spec: StudySpec
    workload: Workload
    data: WorkloadData
    device: torch.device
    trunk: SavedModel | None = None

    @property
    def task_losses(self) -> dict[str, str]:
        return {t.name: t.loss for t in self.spec.aux_tasks}

    @property
    def temperatures(self) -> dict[str, float]:
        return {t.name: t.temperature for t in self.spec.aux_tasks}

    def new_model(self, seed: int, trunk_mode: str | None = None) -> MultiTaskModel:
        """A freshly initialised model; with ``trunk``, its trunk starts from the saved one in ``trunk_mode``
        (default: the spec's first mode)."""
        torch.manual_seed(seed)
        spec = self.spec
        unloaded = [t.teacher for t in spec.aux_tasks if t.teacher is not None and t.name not in self.data.tasks]
        unloaded += [spec.trunk.from_trial] if spec.trunk is not None and self.trunk is None else []
        if unloaded:
            raise ValueError(f"the saved model(s) {unloaded} are not loaded; prepare the study with "
                             "tuner.engine.transfer.with_saved_models(prep, store)")
        tasks = {t.name: self.data.tasks[t.name] for t in spec.aux_tasks}
        if self.trunk is not None:
            trunk: tuple[nn.Module, int] | None = (rebuild_trunk(self.trunk.meta), int(self.trunk.meta["feature_dim"]))
        else:
            trunk = self.workload.build_trunk(self.data.input_shape, spec.training.hidden)
        model = build_model(self.data.input_shape, self.data.n_classes, tasks, spec.training.hidden, trunk)
        model = tie_kd_heads(with_target_domain(model, self.data, self.task_losses, seed), spec)
        if self.trunk is not None and spec.trunk is not None:
            mode = trunk_mode or spec.trunk.modes()[0]
            model = start_trunk(model, self.trunk, mode, spec.trunk.lr_factor)
        return model.to(self.device)

    def sanity_batch(self, seed: int) -> Split:
        g = torch.Generator().manual_seed(seed)
        n = min(self.spec.sanity.batch_size, len(self.data.train))
        index = torch.randperm(len(self.data.train), generator=g)[:n].to(self.device)
        return self.data.train.take(index)


@lru_cache(maxsize=8)
def _build_data(workload_name: str, params_json: str, aux_tasks: tuple[str, ...]) -> tuple[Workload, WorkloadData]:
    workload = make_workload(workload_name, json.loads(params_json))
    return workload, workload.build(aux_tasks)


def prepare(spec: StudySpec, device: str | torch.device | None = None) -> PreparedStudy:
    """Build (or reuse) the workload's data for ``spec`` and place it on the device.

    A spec that names saved models (``trunk``, a kd ``teacher``) needs them too: pass the result through
    ``tuner.engine.transfer.with_saved_models(prep, store)``.
    """
    params_json = json.dumps(spec.workload.params, sort_keys=True, default=str)
    aux = workload_aux_tasks(spec)
    workload, data = _build_data(spec.workload.name, params_json, aux)
    dev = resolve_device(str(device)) if device is not None else resolve_device(spec.training.device)
    return PreparedStudy(spec=spec, workload=workload, data=data.to(dev), device=dev)


@torch.no_grad()
def evaluate(prep: PreparedStudy, model: MultiTaskModel, split: Split, lambdas: dict[str, float],
             chunk: int = 4096) -> tuple[dict[str, float], float]:
    """Per-task mean losses (plus weighted ``total``) and main-task accuracy over ``split``."""
    model.eval()
    sums: dict[str, float] = {}
    correct = 0
    n = len(split)
    for start in range(0, n, chunk):
        part = split.take(torch.arange(start, min(start + chunk, n), device=split.x.device))
        out = model(part.x)
        bd = compute_losses(out, part.y, part.aux, prep.task_losses, lambdas, prep.temperatures)
        for k, v in bd.detached().items():
            sums[k] = sums.get(k, 0.0) + v * len(part)
        correct += int((out[MAIN].argmax(-1) == part.y).sum())
    model.train()
    return {k: v / n for k, v in sums.items()}, correct / n


def _better(a: float, b: float | None, direction: str) -> bool:
    if b is None or math.isnan(b):
        return not math.isnan(a)
    return a > b if direction == "maximize" else a < b


def run_trial(
    prep: PreparedStudy,
    lambdas: dict[str, float],
    seed: int | None = None,
    callbacks: Sequence[TrialCallback] = (),
    trunk_mode: str | None = None,
) -> TrialResult:
    """Run one trial of ``prep.spec`` with ``lambdas`` (complete: fixed λ filled in by the caller or here).

    Deterministic given (spec, λ, seed, trunk mode) on the CPU. The sanity gate runs first; a failed gate ends
    the trial with status ``failed_sanity`` and its reason, and costs no full training. ``trunk_mode`` (a trunk
    started from a saved model) defaults to the spec's first mode.
    """
    spec = prep.spec
    lambdas = spec.complete_lambdas(lambdas)
    seed = spec.training.seed if seed is None else seed
    metric, direction = spec.objective.metric, str(spec.objective.direction)
    start = time.perf_counter()
    result = TrialResult(status="complete", lambdas=lambdas, seed=seed, metric=metric, direction=direction)
    if spec.trunk is not None:
        result.trunk_mode = spec.trunk_mode_of({} if trunk_mode is None else {TRUNK_MODE_PARAM: trunk_mode})

    model = prep.new_model(seed, result.trunk_mode)
    from tuner.engine.callbacks.affinity import affinity_probe  # it builds on this module's TrialCallback

    probe = affinity_probe(prep)
    callbacks = [*callbacks, probe] if probe is not None else callbacks
    if spec.sanity.enabled:
        result.sanity = sanity_gate(model, prep.sanity_batch(seed), prep.task_losses, lambdas,
                                    spec.training, spec.sanity, prep.temperatures,
                                    partial(stop_requested, callbacks))
        _dispatch(callbacks, "on_sanity_end", result.sanity)
        if not result.sanity.passed:
            result.status = "failed_sanity"
            result.reason = result.sanity.reason
            result.seconds = time.perf_counter() - start
            return result

    opt = make_optimizer(model.param_groups(spec.training.lr), spec.training, spec.training.lr)
    train = prep.data.train
    gen = torch.Generator().manual_seed(seed)
    bs = spec.training.batch_size
    best_state: dict[str, torch.Tensor] | None = None
    since_best = 0
    steps = 0
    for epoch in range(spec.training.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(train), generator=gen).to(prep.device)
        sums: dict[str, float] = {}
        for i in range(0, len(train), bs):
            batch = train.take(order[i:i + bs])
            bd = compute_losses(model(batch.x), batch.y, batch.aux, prep.task_losses, lambdas,
                                prep.temperatures)
            step = TrainStep(steps, epoch, model, batch, bd, bd.total)
            _dispatch(callbacks, "on_step", step)
            steps += 1
            opt.zero_grad(set_to_none=True)
            step.loss.backward()
            opt.step()
            for k, v in bd.terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(batch)
            sums["total"] = sums.get("total", 0.0) + float(bd.total.detach()) * len(batch)
        val_loss, val_acc = evaluate(prep, model, prep.data.val, lambdas)
        m = EpochMetrics(epoch=epoch, train_loss={k: v / len(train) for k, v in sums.items()},
                         val_loss=val_loss, val_accuracy=val_acc, seconds=time.perf_counter() - t0,
                         target=target_metrics(model, prep.data.target, "val"))
        result.epochs.append(m)
        value = m.objective(metric)
        if _better(value, result.value, direction):
            result.value, result.best_epoch, result.val_accuracy = value, epoch, val_acc
            best_state = copy.deepcopy(model.state_dict())
            since_best = 0
        else:
            since_best += 1
        try:
            _dispatch(callbacks, "on_epoch_end", m)
        except TrialPruned:
            result.status = "pruned"
            break
        if spec.training.patience is not None and since_best >= spec.training.patience:
            break

    if best_state is not None:
        model.load_state_dict(best_state)
    _dispatch(callbacks, "on_train_end", model)
    if probe is not None:
        result.affinity = probe.summary()
    result.test_loss, result.test_accuracy = evaluate(prep, model, prep.data.test, lambdas)
    result.target_test = target_metrics(model, prep.data.target, "test")
    result.seconds = time.perf_counter() - start
    return result
