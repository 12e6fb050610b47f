"""``oom-synthetic``: a test-only plugin workload whose model runs out of CUDA memory on odd-numbered trials.

The synthetic workload, with a trunk whose forward raises ``torch.cuda.OutOfMemoryError`` (what PyTorch raises
when an allocation on the GPU fails) when the model was built for an odd seed: a trial's seed is the spec's seed
plus its number, so with ``training.seed: 0`` trials 1, 3, … run out of memory and 0, 2, … train (the
study-level gate, at seed 0, passes). Registered through the real ``auxtune.workloads`` entry point by
``tests/tuner/execution/test_gpu_trials.py``, which writes a ``.dist-info`` naming it.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from tuner.workloads.synthetic import SyntheticWorkload

#: The message of the injected error, as CUDA's caching allocator words it.
MESSAGE = "CUDA out of memory. Tried to allocate 20.00 GiB (injected by the oom-synthetic test workload)"


class OomTrunk(nn.Module):
    """A two-layer MLP that raises CUDA's out-of-memory error in forward when ``raises``."""

    def __init__(self, in_features: int, hidden: int, raises: bool):
        super().__init__()
        self.raises = raises
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.raises:
            raise torch.cuda.OutOfMemoryError(MESSAGE)
        return self.body(x)


class OomWorkload(SyntheticWorkload):
    name: ClassVar[str] = "oom-synthetic"
    description: ClassVar[str] = "test only: synthetic, out of CUDA memory on odd-numbered trials"

    def build_trunk(self, input_shape: tuple[int, ...], hidden: int) -> tuple[nn.Module, int]:
        # ``PreparedStudy.new_model`` seeds torch with the trial's seed just before it builds the trunk
        return OomTrunk(int(torch.tensor(input_shape).prod()), hidden, raises=torch.initial_seed() % 2 == 1), hidden
