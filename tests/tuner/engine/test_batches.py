"""Data sets, not only tensors: a workload whose splits are map-style data sets trains from a DataLoader, the same
whatever its worker count, and the sanity gate never changes a trial.

``stream-demo`` is a plugin workload defined here (registered in the registry's plugin table for the test, as an
entry point would): the ``synthetic`` workload's tensors served item by item, with noise drawn from torch's
global generator in ``__getitem__`` on the training split and a trunk with dropout, the two things that shift a
trial's random stream when anything else draws from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import nn

import tuner.workloads
from tests.factories.images import images_spec, write_image_folder
from tuner.engine.loop import run_trial
from tuner.engine.population.run import Member, run_population
from tuner.engine.prepared import prepare
from tuner.results import TrialResult
from tuner.spec import parse_spec
from tuner.workloads import Split, TaskInfo, Workload, WorkloadData, WorkloadParams, make_workload


class ItemsOf:
    """A split's tensors as a map-style data set; ``noise`` adds N(0, noise²) from torch's global generator."""

    def __init__(self, split: Split, noise: float = 0.0):
        self.split, self.noise = split, noise

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, dict[str, torch.Tensor]]:
        x = self.split.x[i]
        if self.noise:
            x = x + self.noise * torch.randn(x.shape)
        return x, int(self.split.y[i]), {k: v[i] for k, v in self.split.aux.items()}


class StreamParams(WorkloadParams):
    noise: float = 0.0
    dropout: float = 0.0


class StreamWorkload(Workload):
    name: ClassVar[str] = "stream-demo"
    params_model: ClassVar[type[WorkloadParams]] = StreamParams

    def _synthetic(self) -> Workload:
        return make_workload("synthetic", {"n_train": 160, "n_val": 64, "n_test": 64})

    def describe_tasks(self) -> dict[str, TaskInfo]:
        return self._synthetic().describe_tasks()

    def build(self, aux_tasks: Sequence[str] = ()) -> WorkloadData:
        data = self._synthetic().build(aux_tasks)
        noise = self.params.noise  # type: ignore[attr-defined]
        return WorkloadData(ItemsOf(data.train, noise), ItemsOf(data.val), ItemsOf(data.test),  # type: ignore[arg-type]
                            data.input_shape, data.n_classes, data.tasks, data.class_names)

    def build_trunk(self, input_shape: tuple[int, ...], hidden: int) -> tuple[nn.Module, int] | None:
        if not self.params.dropout:  # type: ignore[attr-defined]
            return None
        return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(),
                             nn.Dropout(self.params.dropout), nn.Linear(hidden, hidden), nn.ReLU()), hidden  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _stream_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuner.workloads, "_plugins", lambda: {StreamWorkload.name: StreamWorkload})


def stream_spec(workers: int = 0, sanity: bool = True, **params: Any) -> dict[str, Any]:
    return {"name": "stream-test", "workload": {"name": "stream-demo", "params": params},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
            "training": {"epochs": 2, "batch_size": 32, "lr": 0.003, "device": "cpu",
                         "loader": {"num_workers": workers}},
            "sanity": {"enabled": sanity, "max_steps": 10, "min_accuracy": 0.1, "min_loss_drop": 0.01}}


def figures(result: TrialResult) -> list[float]:
    """Every figure of a complete trial: per epoch each task's train and val loss and the val accuracy, then the
    test losses."""
    assert result.status == "complete", result.reason
    out: list[float] = []
    for losses in [d for e in result.epochs for d in (e.train_loss, e.val_loss, {"acc": e.val_accuracy})]:
        out += [losses[k] for k in sorted(losses)]
    return out + [result.test_loss[k] for k in sorted(result.test_loss)]


def trial(raw: dict[str, Any], seed: int = 3) -> TrialResult:
    spec = parse_spec(raw)
    return run_trial(prepare(spec), spec.default_lambdas(), seed=seed)


def test_a_plugin_giving_data_sets_trains_like_its_tensors() -> None:
    streamed = trial(stream_spec())
    prep = prepare(parse_spec(stream_spec()))
    assert not prep.data.in_memory and prep.batches("train").split is prep.data.train  # stays on the host
    spec = parse_spec({**stream_spec(), "workload": {"name": "synthetic",
                                                     "params": {"n_train": 160, "n_val": 64, "n_test": 64}}})
    in_memory = run_trial(prepare(spec), spec.default_lambdas(), seed=3, data_seed=spec.training.seed)
    assert figures(streamed) == pytest.approx(figures(in_memory), rel=1e-5)  # the same order: the data seed


def test_same_seed_same_figures_whatever_the_worker_count() -> None:
    noisy = {"noise": 0.3}
    alone = figures(trial(stream_spec(**noisy)))
    assert figures(trial(stream_spec(workers=2, **noisy))) == alone
    assert figures(trial(stream_spec(**noisy), seed=4)) != alone


@pytest.mark.parametrize("params", [{}, {"noise": 0.3, "dropout": 0.2}])
def test_the_gate_never_changes_the_trial_on_a_data_set(params: dict[str, Any]) -> None:
    gated = trial(stream_spec(**params))
    assert gated.sanity is not None and gated.sanity.steps > 0
    assert figures(gated) == figures(trial(stream_spec(sanity=False, **params)))


def test_the_gate_never_changes_the_trial_on_tensors(synthetic_spec: Any) -> None:
    results = []
    for enabled in (True, False):
        spec = synthetic_spec(sanity={"enabled": enabled, "min_accuracy": 0.3})
        results.append(figures(run_trial(prepare(spec), spec.default_lambdas(), seed=1)))
    assert results[0] == results[1]


def test_images_with_augmentation_gate_on_or_off_and_a_population_reads_each_batch_once(tmp_path: Path) -> None:
    root, attributes = write_image_folder(tmp_path / "images", per_class=8)
    raw = images_spec(root, attributes, augment={"flip": True, "crop_padding": 2, "jitter": 0.2})
    on = trial(raw, seed=1)
    assert figures(on) == figures(trial({**raw, "sanity": {**raw["sanity"], "enabled": False}}, seed=1))  # type: ignore[dict-item]
    spec = parse_spec(raw)
    prep = prepare(spec)
    reads = 0
    dataset = prep.data.train
    sample = dataset.sample  # type: ignore[union-attr]

    def counted(index: int, seed: int | None) -> Any:
        nonlocal reads
        reads += seed is not None  # an augmented training read (the gate's batches are read un-augmented)
        return sample(index, seed)

    dataset.sample = counted  # type: ignore[union-attr]
    members = [Member(spec.default_lambdas(), 1), Member({"ear": 0.0, "coat": 2.0}, 2)]
    outcomes = run_population(prep, members)
    assert reads == spec.training.epochs * len(dataset)  # once per sample and epoch, for both members
    assert isinstance(outcomes[0], TrialResult)
    assert figures(outcomes[0]) == pytest.approx(figures(on), rel=1e-4, abs=1e-6)
