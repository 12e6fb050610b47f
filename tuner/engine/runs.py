"""Training one confirmation or reference-arm run (issue #7): a trial of its study on fresh seeds.

A run trains like a trial of its study (same data, epochs, optimiser), without the sanity gate (its λ set
already passed it in the search) and without the affinity probe, its fresh seed setting both the initial weights
and the minibatch order (also on a data-set workload, whose search trials share one order); it also records the
test split's confusion matrix for the error analysis. Leasing and storing runs is ``tuner.execution.runs``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tuner.engine.callbacks import trial_callbacks
from tuner.engine.callbacks.base import TrialCallback
from tuner.engine.callbacks.confusion import ConfusionRecorder
from tuner.engine.callbacks.weighting import LearnedWeighting, make_weighting
from tuner.engine.loop import run_trial
from tuner.engine.losses import MAIN
from tuner.engine.prepared import PreparedStudy
from tuner.results import EpochMetrics, TrialResult
from tuner.spec import AffinitySpec, ArmSpec, StudySpec
from tuner.spec.transfer import lambda_params

#: What ``execute_run`` returns: ``(state, val value, test value, result document, reason)``.
RunOutcome = tuple[str, float | None, float | None, dict[str, Any], str]


class EpochGuard(TrialCallback):
    """Calls ``check`` after every epoch; ``check`` raises (its caller's own exception) to stop the run there,
    e.g. a worker's lease check on shutdown or once the lease is lost."""

    def __init__(self, check: Callable[[], None]):
        self.check = check

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self.check()


def run_spec(spec: StudySpec) -> StudySpec:
    """The spec a confirmation run trains with: the study's, without sanity gate and affinity probe, and every
    searched λ allowed down to 0 (an ablation arm sets a task's λ to 0 even where the search's bounds did not)."""
    tasks = [t.model_copy(update={"lambda_": t.lambda_.model_copy(update={"low": 0.0})})
             if t.lambda_.fixed is None else t for t in spec.aux_tasks]
    return spec.model_copy(update={"sanity": spec.sanity.model_copy(update={"enabled": False}),
                                   "affinity": AffinitySpec(every=0), "aux_tasks": tasks})


def test_value(result: TrialResult, metric: str) -> float | None:
    """The test split's counterpart of the objective ``metric`` (``val_accuracy`` → test accuracy, …)."""
    if metric.startswith("target_"):  # the main task on a target domain (tuner.engine.domain)
        return result.target_test.get("accuracy" if metric.endswith("accuracy") else "loss")
    return result.test_accuracy if metric.endswith("accuracy") else result.test_loss.get(MAIN)


def execute_run(prep: PreparedStudy, kind: str, params: dict[str, Any], seed: int,
                callbacks: list[TrialCallback] | None = None) -> RunOutcome:
    """Train one run; returns ``(state, val value, test value, result document, reason)``.

    ``kind`` ``weighting`` trains with the learned weighting ``params`` describes (an ``ArmSpec``); the other
    kinds train with the fixed λ set ``params``. Keys starting with ``@`` describe the confirmation (its design,
    the split seed the caller already built ``prep`` with) and are left out here.
    """
    params = {k: v for k, v in params.items() if not k.startswith("@")}
    spec = prep.spec
    confusion = ConfusionRecorder(prep.batches("test"), prep.data.n_classes)
    extra: list[TrialCallback] = [confusion]
    weighting: LearnedWeighting | None = None
    if kind == "weighting":
        weighting = make_weighting(ArmSpec.model_validate(params), list(prep.task_losses), spec.training.lr)
        extra.append(weighting)
        lambdas = spec.default_lambdas()  # unused by the loss the arm backpropagates; kept for the records
    else:
        lambdas = lambda_params(params)
    result = run_trial(prep, lambdas, seed=seed, callbacks=trial_callbacks(prep, *extra, *(callbacks or [])),
                       trunk_mode=spec.trunk_mode_of(params), data_seed=seed)
    doc = result.to_dict()
    doc["confusion"] = confusion.matrix
    doc["class_names"] = list(prep.data.class_names)
    doc["n_train"], doc["n_test"] = len(prep.data.train), len(prep.data.test)  # the resampled t-test's correction
    if weighting is not None:
        doc["weighting"] = weighting.summary()
    val, test = result.value, test_value(result, spec.objective.metric)
    if val is None or val != val:
        return "failed", None, None, doc, "the objective was not finite in any epoch"
    return "complete", val, test, doc, ""
