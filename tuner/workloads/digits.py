"""``digits``: scikit-learn's bundled 8×8 handwritten digits (no download), main task = the digit.

Auxiliary tasks come from a per-class attribute table (soft scores in [0, 1], the cheap way to label aux
tasks: one row per class) plus two per-sample measurements computed from the image. ``n_train`` sets the
small-data regime where aux tasks matter; validation and test sets stay fixed for a given ``split_seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

from tuner.workloads._base import Split, TargetDomain, TaskInfo, Workload, WorkloadData, WorkloadParams
from tuner.workloads._limits import Seed
from tuner.workloads.shifts import ShiftName, shift_images

if TYPE_CHECKING:
    import torch

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
    n_train: int = Field(300, ge=10, le=N_DIGITS, description="training samples (small data: aux tasks matter)")
    n_val: int = Field(300, ge=10, le=N_DIGITS)
    n_test: int = Field(0, ge=0, le=N_DIGITS, description="test samples; 0 = all the rest")
    split_seed: Seed = 0
    target_shift: ShiftName = Field(
        "none", description="a generated target domain (tuner.engine.domain): its images noised, blurred or shifted")
    target_strength: float = Field(1.0, gt=0.0, le=4.0, description="how far the target domain is shifted")
    n_target: int = Field(300, ge=10, le=N_DIGITS, description="unlabelled target-domain images for the mmd aux task")
    n_target_val: int = Field(200, ge=10, le=N_DIGITS,
                              description="labelled target images for validation (and as many for test)")

    @model_validator(mode="after")
    def _fits(self) -> DigitsParams:
        if self.n_train + self.n_val + max(self.n_test, 10) + self.target_size() > N_DIGITS:
            raise ValueError(f"n_train + n_val + n_test (+ n_target + 2 × n_target_val with a target_shift) must "
                             f"leave a test set within the {N_DIGITS} digits")
        return self

    def target_size(self) -> int:
        """Digits set aside for the target domain (none without a ``target_shift``)."""
        return 0 if self.target_shift == "none" else self.n_target + 2 * self.n_target_val


class DigitsWorkload(Workload):
    name: ClassVar[str] = "digits"
    description: ClassVar[str] = "scikit-learn's 8x8 digits; per-class stroke attributes as aux tasks"
    params_model: ClassVar[type[WorkloadParams]] = DigitsParams

    def describe_tasks(self) -> dict[str, TaskInfo]:
        tasks = {name: TaskInfo(name, "soft", 1, _DESCRIPTIONS[name]) for name in [*DIGIT_ATTRIBUTES, "ink", "mirror"]}
        if self.params.target_shift != "none":  # type: ignore[attr-defined]
            tasks["domain"] = TaskInfo("domain", "domain", 1, "source vs the shifted target domain (loss mmd)")
        return tasks

    def describe_shapes(self, aux_tasks: Sequence[str] = ()) -> tuple[tuple[int, ...], int]:
        return (1, 8, 8), 10

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

        if p.target_size():
            aux["domain"] = torch.zeros(len(y))  # the mmd task has no per-sample target
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(p.split_seed))
        n_test = p.n_test or (len(y) - p.n_train - p.n_val - p.target_size())
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
            target=self._target_domain(full, order[len(y) - p.target_size():]) if p.target_size() else None,
        )

    def _target_domain(self, full: Split, index: torch.Tensor) -> TargetDomain:
        """Digits kept out of every source split, shifted: unlabelled pool, then labelled val and test."""
        p: DigitsParams = self.params  # type: ignore[assignment]
        shifted = Split(shift_images(full.x[index], p.target_shift, p.target_strength, p.split_seed + 1),
                        full.y[index])
        cuts = [p.n_target, p.n_target + p.n_target_val]
        return TargetDomain(train=shifted.take(index.new_tensor(range(cuts[0]))),
                            val=shifted.take(index.new_tensor(range(cuts[0], cuts[1]))),
                            test=shifted.take(index.new_tensor(range(cuts[1], len(index)))))
