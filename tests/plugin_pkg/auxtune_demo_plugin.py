"""``xor-demo``: a third-party auxtune workload, registered through the ``auxtune.workloads`` entry point.

Points ``x ~ N(0, I)`` in ``2 + noise_dims`` dimensions; the class is the XOR of the signs of the first two
coordinates. The aux task ``signs`` gives soft targets ``sigmoid(4·x[:2])``: how clearly each of the two
coordinates is positive, the two facts the XOR is made of.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from tuner.workloads import Split, TaskInfo, Workload, WorkloadData, WorkloadParams


class DemoParams(WorkloadParams):
    n: int = Field(400, ge=40, description="points in all; half train, a quarter each val and test")
    noise_dims: int = Field(2, ge=0, description="extra input dimensions that carry nothing")
    seed: int = 0


class DemoWorkload(Workload):
    name: ClassVar[str] = "xor-demo"
    description: ClassVar[str] = "XOR of two coordinate signs; aux task: the soft signs"
    params_model: ClassVar[type[WorkloadParams]] = DemoParams

    def describe_tasks(self) -> dict[str, TaskInfo]:
        return {"signs": TaskInfo("signs", "soft", 2, "soft signs of the first two coordinates")}

    def build(self, aux_tasks: Sequence[str] = ()) -> WorkloadData:
        import torch  # only here: describe_tasks must work without torch

        p: DemoParams = self.params  # type: ignore[assignment]
        g = torch.Generator().manual_seed(p.seed)
        x = torch.randn(p.n, 2 + p.noise_dims, generator=g)
        y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
        full = Split(x, y, {"signs": torch.sigmoid(4.0 * x[:, :2])})
        a, b = p.n // 2, p.n // 2 + p.n // 4
        idx = torch.arange(p.n)
        return WorkloadData(
            train=full.take(idx[:a]), val=full.take(idx[a:b]), test=full.take(idx[b:]),
            input_shape=(2 + p.noise_dims,), n_classes=2, tasks=self.describe_tasks(),
            class_names=["same sign", "different signs"],
        )
