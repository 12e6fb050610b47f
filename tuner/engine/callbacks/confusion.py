"""The confusion matrix of a trained model on a split, recorded for the error analysis of a confirmation."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from tuner.engine.batches import chunks
from tuner.engine.callbacks.base import TrialCallback
from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel
from tuner.workloads import Split


class ConfusionRecorder(TrialCallback):
    """Records the confusion matrix (rows: true class, columns: predicted) of the best epoch on a split (tensors,
    or its batches: ``PreparedStudy.batches("test")``)."""

    def __init__(self, split: Split | Iterable[Split], n_classes: int):
        self.split, self.n_classes = split, n_classes
        self.matrix: list[list[int]] | None = None

    @torch.no_grad()
    def on_train_end(self, model: MultiTaskModel) -> None:
        was_training = model.training
        model.eval()
        n = self.n_classes
        counts = torch.zeros(n * n, dtype=torch.long)
        for part in chunks(self.split) if isinstance(self.split, Split) else self.split:
            predicted = model(part.x)[MAIN].argmax(-1)
            counts += torch.bincount(part.y.long() * n + predicted, minlength=n * n).cpu()
        model.train(was_training)
        self.matrix = counts.reshape(n, n).tolist()
