"""``oom-synthetic``: a test-only plugin workload whose model runs out of CUDA memory on odd-numbered trials.

The synthetic workload, with a trunk whose forward raises ``torch.cuda.OutOfMemoryError`` (what PyTorch raises
when an allocation on the GPU fails; with ``allocate: true``, on a GPU, it really asks for a petabyte instead)
when the model was built for an odd seed: a trial's seed is the spec's seed
plus its number, so with ``training.seed: 0`` trials 1, 3, … run out of memory and 0, 2, … train (the
study-level gate, at seed 0, passes). Registered through the real ``auxtune.workloads`` entry point by
``tests/tuner/execution/test_gpu_trials.py``, which writes a ``.dist-info`` naming it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from tuner.workloads import WorkloadParams
from tuner.workloads.synthetic import SyntheticParams, SyntheticWorkload

#: The message of the injected error, as CUDA's caching allocator words it.
MESSAGE = "CUDA out of memory. Tried to allocate 20.00 GiB (injected by the oom-synthetic test workload)"


class OomTrunk(nn.Module):
    """A two-layer MLP that raises CUDA's out-of-memory error in forward when ``raises``."""

    def __init__(self, in_features: int, hidden: int, raises: bool, allocate: bool):
        super().__init__()
        self.raises, self.allocate = raises, allocate
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.raises and self.allocate:  # a real out-of-memory error of the device x is on
            torch.empty(1 << 50, dtype=torch.uint8, device=x.device)
        if self.raises:
            raise torch.cuda.OutOfMemoryError(MESSAGE)
        return self.body(x)


class OomParams(SyntheticParams):
    allocate: bool = False


class OomWorkload(SyntheticWorkload):
    name: ClassVar[str] = "oom-synthetic"
    description: ClassVar[str] = "test only: synthetic, out of CUDA memory on odd-numbered trials"
    params_model: ClassVar[type[WorkloadParams]] = OomParams

    def build_trunk(self, input_shape: tuple[int, ...], hidden: int) -> tuple[nn.Module, int]:
        # ``PreparedStudy.new_model`` seeds torch with the trial's seed just before it builds the trunk
        raises, allocate = torch.initial_seed() % 2 == 1, bool(self.params.allocate)  # type: ignore[attr-defined]
        return OomTrunk(int(torch.tensor(input_shape).prod()), hidden, raises, allocate), hidden
