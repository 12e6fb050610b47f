"""The confusion matrix of a trained model on a split, recorded for the error analysis of a confirmation."""

from __future__ import annotations

import torch

from tuner.engine.callbacks.base import TrialCallback
from tuner.engine.losses import MAIN
from tuner.engine.model import MultiTaskModel
from tuner.workloads import Split


class ConfusionRecorder(TrialCallback):
    """Records the confusion matrix (rows: true class, columns: predicted) of the best epoch on a split."""

    def __init__(self, split: Split, n_classes: int, chunk: int = 4096):
        self.split, self.n_classes, self.chunk = split, n_classes, chunk
        self.matrix: list[list[int]] | None = None

    @torch.no_grad()
    def on_train_end(self, model: MultiTaskModel) -> None:
        was_training = model.training
        model.eval()
        n = self.n_classes
        counts = torch.zeros(n * n, dtype=torch.long, device=self.split.y.device)
        for start in range(0, len(self.split), self.chunk):
            index = torch.arange(start, min(start + self.chunk, len(self.split)), device=self.split.x.device)
            part = self.split.take(index)
            predicted = model(part.x)[MAIN].argmax(-1)
            counts += torch.bincount(part.y.long() * n + predicted, minlength=n * n)
        model.train(was_training)
        self.matrix = counts.reshape(n, n).tolist()
