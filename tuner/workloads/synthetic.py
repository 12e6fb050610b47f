"""``synthetic``: generated data with a known ground truth about which aux task helps.

Generation (deterministic by ``data_seed``; ``split_seed`` shuffles which samples go to which split): inputs
``x ~ N(0, I_dim)``. Two orthonormal directions ``U`` carry the signal: ``s = U x``. The main task has 4
classes, the quadrant of ``s`` (``y = 2·[s₁>0] + [s₂>0]``), with a fraction ``label_noise`` of labels replaced
at random, on few training samples, so the noisy main labels alone teach ``U`` poorly.

Ground truth of the auxiliary tasks:

- ``helpful``: soft targets ``sigmoid(4·s)`` (2 outputs) — clean, noise-free supervision of exactly the
  directions the main task needs. Weighting it up **helps** the main task.
- ``neutral``: soft target ``sigmoid(2·v·x)`` for a direction ``v`` orthogonal to ``U`` — learnable, but
  unrelated to the main task. Its weight has **no systematic effect**.
- ``harmful``: ``harmful_dim`` real targets per sample, drawn ``N(0, harmful_scale²)`` independently of
  ``x`` (loss ``mse``). They can only be fitted by memorising noise in the shared trunk, and their large,
  persistent gradients swamp the main task's (the classic badly-scaled aux loss). Weighting it up **hurts**
  the main task.
- ``null``: a single soft score drawn uniformly in [0, 1], independent of everything: an aux task that
  should make no detectable difference at a small λ.

``tests/tuner/workloads/test_synthetic_ground_truth.py`` checks the helpful and harmful claims over several seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from tuner.workloads._base import Split, TaskInfo, Workload, WorkloadData, WorkloadParams
from tuner.workloads._limits import MAX_DIM, MAX_SAMPLES, Seed

#: Most numbers the generated splits hold in all (inputs and harmful targets).
MAX_SYNTHETIC_NUMBERS = 20_000_000


class SyntheticParams(WorkloadParams):
    n_train: int = Field(300, ge=8, le=MAX_SAMPLES)
    n_val: int = Field(500, ge=8, le=MAX_SAMPLES)
    n_test: int = Field(2000, ge=8, le=MAX_SAMPLES)
    dim: int = Field(20, ge=3, le=MAX_DIM, description="input dimension")
    label_noise: float = Field(0.3, ge=0.0, lt=1.0, description="fraction of main labels drawn at random")
    harmful_dim: int = Field(8, ge=1, le=MAX_DIM, description="random targets per sample of the harmful task")
    harmful_scale: float = Field(3.0, gt=0.0, le=1000.0, description="std of the harmful task's random targets")
    data_seed: Seed = 0
    split_seed: Seed | None = Field(None, description=(
        "shuffle the generated samples with this seed before cutting train/val/test; none: in generated order"))

    @model_validator(mode="after")
    def _fits_in_memory(self) -> SyntheticParams:
        # Every split is generated at once, inputs and harmful targets: keep it to ~80 MB of float32.
        numbers = (self.n_train + self.n_val + self.n_test) * (self.dim + self.harmful_dim)
        if numbers > MAX_SYNTHETIC_NUMBERS:
            raise ValueError(f"(n_train + n_val + n_test) × (dim + harmful_dim) = {numbers} generated numbers; "
                             f"at most {MAX_SYNTHETIC_NUMBERS}: lower the sample counts or dim")
        return self


class SyntheticWorkload(Workload):
    name: ClassVar[str] = "synthetic"
    description: ClassVar[str] = "generated data; aux tasks with a known effect: helpful, neutral, harmful"
    params_model: ClassVar[type[WorkloadParams]] = SyntheticParams

    def describe_tasks(self) -> dict[str, TaskInfo]:
        p: SyntheticParams = self.params  # type: ignore[assignment]
        return {
            "helpful": TaskInfo("helpful", "soft", 2, "clean soft view of the main task's signal (helps)"),
            "neutral": TaskInfo("neutral", "soft", 1, "learnable but unrelated to the main task (neutral)"),
            "harmful": TaskInfo("harmful", "real", p.harmful_dim, "large random targets to memorise (hurts)"),
            "null": TaskInfo("null", "soft", 1, "a random score independent of everything"),
        }

    def describe_shapes(self, aux_tasks: Sequence[str] = ()) -> tuple[tuple[int, ...], int]:
        return (self.params.dim,), 4  # type: ignore[attr-defined]

    def build(self, aux_tasks: Sequence[str] = ()) -> WorkloadData:
        import torch

        p: SyntheticParams = self.params  # type: ignore[assignment]
        g = torch.Generator().manual_seed(p.data_seed)
        n = p.n_train + p.n_val + p.n_test
        basis, _ = torch.linalg.qr(torch.randn(p.dim, 3, generator=g))
        u, v = basis[:, :2], basis[:, 2]
        x = torch.randn(n, p.dim, generator=g)
        s = x @ u
        y = 2 * (s[:, 0] > 0).long() + (s[:, 1] > 0).long()
        flip = torch.rand(n, generator=g) < p.label_noise
        y = torch.where(flip, torch.randint(0, 4, (n,), generator=g), y)
        aux = {
            "helpful": torch.sigmoid(4.0 * s),
            "neutral": torch.sigmoid(2.0 * (x @ v)),
            "harmful": p.harmful_scale * torch.randn(n, p.harmful_dim, generator=g),
            "null": torch.rand(n, generator=g),
        }
        full = Split(x, y, aux)
        idx = torch.arange(n) if p.split_seed is None else torch.randperm(
            n, generator=torch.Generator().manual_seed(p.split_seed))
        a, b = p.n_train, p.n_train + p.n_val
        return WorkloadData(
            train=full.take(idx[:a]), val=full.take(idx[a:b]), test=full.take(idx[b:]),
            input_shape=(p.dim,), n_classes=4, tasks=self.describe_tasks(),
            class_names=["s1-s2-", "s1-s2+", "s1+s2-", "s1+s2+"],
        )
