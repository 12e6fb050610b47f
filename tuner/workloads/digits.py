"""``digits``: scikit-learn's bundled 8×8 handwritten digits (no download), main task = the digit.

Auxiliary tasks come from a per-class attribute table (soft scores in [0, 1], the cheap way to label aux
tasks: one row per class) plus two per-sample measurements computed from the image. ``n_train`` sets the
small-data regime where aux tasks matter; validation and test sets stay fixed for a given ``split_seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from tuner.workloads._base import Split, TaskInfo, Workload, WorkloadData, WorkloadParams

# Per-class soft attributes of the digits 0..9: how much a typical writer's digit has each property.
DIGIT_ATTRIBUTES: dict[str, tuple[float, ...]] = {
    #            0    1    2    3    4    5    6    7    8    9
    "loop":     (1.0, 0.0, 0.1, 0.0, 0.4, 0.0, 1.0, 0.0, 1.0, 1.0),  # has a closed loop
    "vertical": (0.0, 1.0, 0.0, 0.0, 1.0, 0.2, 0.1, 0.6, 0.0, 0.6),  # has a straight vertical stroke
    "horizontal": (0.0, 0.0, 1.0, 0.2, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0),  # has a straight horizontal stroke
    "curvy":    (1.0, 0.0, 0.7, 1.0, 0.0, 0.7, 1.0, 0.0, 1.0, 0.8),  # made of curved strokes
    "symmetric": (1.0, 0.8, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0),  # left-right mirror symmetry
    "top_heavy": (0.5, 0.5, 0.4, 0.5, 0.6, 0.5, 0.2, 0.8, 0.5, 0.8),  # ink mostly in the upper half
}
_DESCRIPTIONS = {
    "loop": "has a closed loop (per-class score)",
    "vertical": "has a straight vertical stroke (per-class score)",
    "horizontal": "has a straight horizontal stroke (per-class score)",
    "curvy": "made of curved strokes (per-class score)",
    "symmetric": "left-right mirror symmetric (per-class score)",
    "top_heavy": "ink mostly in the upper half (per-class score)",
    "ink": "fraction of ink in the image (per-sample measurement)",
    "mirror": "measured left-right symmetry of the image (per-sample measurement)",
}
N_DIGITS = 1797  # samples in load_digits


class DigitsParams(WorkloadParams):
    n_train: int = Field(300, ge=10, description="training samples (small data: aux tasks matter)")
    n_val: int = Field(300, ge=10)
    n_test: int = Field(0, ge=0, description="test samples; 0 = all the rest")
    split_seed: int = 0

    @model_validator(mode="after")
    def _fits(self) -> DigitsParams:
        if self.n_train + self.n_val + max(self.n_test, 10) > N_DIGITS:
            raise ValueError(f"n_train + n_val + n_test must leave a test set within the {N_DIGITS} digits")
        return self


class DigitsWorkload(Workload):
    name: ClassVar[str] = "digits"
    description: ClassVar[str] = "scikit-learn's 8x8 digits; per-class stroke attributes as aux tasks"
    params_model: ClassVar[type[WorkloadParams]] = DigitsParams

    def describe_tasks(self) -> dict[str, TaskInfo]:
        return {name: TaskInfo(name, "soft", 1, _DESCRIPTIONS[name])
                for name in [*DIGIT_ATTRIBUTES, "ink", "mirror"]}

    def build(self, aux_tasks: Sequence[str] = ()) -> WorkloadData:
        import torch
        from sklearn.datasets import load_digits

        p: DigitsParams = self.params  # type: ignore[assignment]
        raw = load_digits()
        x = torch.tensor(raw.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
        y = torch.tensor(raw.target, dtype=torch.long)
        table = torch.tensor(list(DIGIT_ATTRIBUTES.values()), dtype=torch.float32).T  # (10, n_attr)
        aux = {name: table[y, i] for i, name in enumerate(DIGIT_ATTRIBUTES)}
        aux["ink"] = x.mean(dim=(1, 2, 3)) / x.mean(dim=(1, 2, 3)).max()
        aux["mirror"] = 1.0 - (x - x.flip(-1)).abs().mean(dim=(1, 2, 3)) / 0.5
        aux["mirror"] = aux["mirror"].clamp(0.0, 1.0)

        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(p.split_seed))
        n_test = p.n_test or (len(y) - p.n_train - p.n_val)
        cuts = [p.n_train, p.n_train + p.n_val, p.n_train + p.n_val + n_test]
        full = Split(x, y, aux)
        return WorkloadData(
            train=full.take(order[: cuts[0]]),
            val=full.take(order[cuts[0]: cuts[1]]),
            test=full.take(order[cuts[1]: cuts[2]]),
            input_shape=(1, 8, 8),
            n_classes=10,
            tasks=self.describe_tasks(),
            class_names=[str(d) for d in range(10)],
        )
