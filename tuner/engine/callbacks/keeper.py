"""Keeps a trial's trained model, for a study that saves its models (``artifacts.save``)."""

from __future__ import annotations

from tuner.engine.callbacks.base import TrialCallback
from tuner.engine.model import MultiTaskModel


class ModelKeeper(TrialCallback):
    """Holds the trained model (its best epoch's weights) once the trial has trained; None before."""

    def __init__(self) -> None:
        self.model: MultiTaskModel | None = None

    def on_train_end(self, model: MultiTaskModel) -> None:
        self.model = model
