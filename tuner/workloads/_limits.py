"""The bounds a workload's params take: seeds a library accepts, and the size of generated data.

They sit with the workloads, the floor below the spec, so a workload needs nothing above it;
``tuner.spec.limits`` lists them with the rest of a spec's limits.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

#: Largest seed of any kind. numpy's RandomState (optuna's samplers) takes 0 .. 2**32 - 1; seeds get offsets
#: added (the worker's stream, the trial number up to ``MAX_TRIALS``, the confirmation base), so stay well below.
MAX_SEED = 2**31 - 1
#: Largest sample count of a generated workload's split, and of its input dimension.
MAX_SAMPLES = 100_000
MAX_DIM = 1_000

Seed = Annotated[int, Field(ge=0, le=MAX_SEED, description=f"a seed, 0 .. {MAX_SEED}")]
