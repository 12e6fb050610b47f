"""The limits of a study spec: every number a worker feeds to a library (optuna, numpy, torch) or loops over.

A spec is submitted by anyone holding a token, and a worker runs what the store holds. A number a library
refuses (a seed past 2**32 - 1) kills every worker that claims the study; a number that is merely huge (a
billion epochs, a grid of a million² points) keeps a worker or the API busy forever. So each number has a
lower and an upper bound here, checked when the spec is parsed, and a few products of them (the work a study or
one population job asks for) have a budget: a spec past one is refused with the field to lower. The budgets
read a whole ``StudySpec`` and live in ``tuner.spec.checks``; nothing here does.

Only plain data and pydantic: ``tuner.spec`` and ``api`` import it without torch or optuna.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field

# The workloads' bounds (seeds, generated sizes) live with them, the floor below; listed here with the rest.
from tuner.workloads._limits import MAX_DIM as MAX_DIM
from tuner.workloads._limits import MAX_SAMPLES as MAX_SAMPLES
from tuner.workloads._limits import MAX_SEED as MAX_SEED
from tuner.workloads._limits import Seed as Seed

#: Largest trial budget of a study (the store's trial numbers are 32-bit; no λ study needs more).
MAX_TRIALS = 1_000_000
#: Largest number of grid points (``grid_points`` ** searched λ × trunk modes): optuna's GridSampler holds
#: every point in memory and the API builds the grid to count the trials (~4 µs a point).
MAX_GRID_SIZE = 10_000
MAX_EPOCHS = 10_000
#: Largest total of epochs a study trains: (n_trials + confirmation runs) × epochs.
MAX_STUDY_EPOCHS = 10_000_000
#: Largest member-epochs one population job trains at once (population.size × epochs): one claim, one process.
MAX_POPULATION_EPOCHS = 100_000
MAX_GATE_STEPS = 1_000
MAX_BATCH_SIZE = 65_536
MAX_HIDDEN = 4_096
#: ``search.params``: at most this many searched params, each with at most this many choices, values bounded.
MAX_SEARCH_PARAMS = 8
MAX_PARAM_CHOICES = 64
MAX_PARAM_VALUE = 1e9
#: Generous on purpose: the sanity gate judges a learning rate (it names a blown-up loss and says to lower it);
#: the bound keeps the number finite and in float32 range.
MAX_LR = 1e6
MAX_WEIGHT_DECAY = 1.0
MAX_LAMBDA = 10_000.0
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.01, 100.0
MAX_GRADNORM_ALPHA = 10.0
MAX_AFFINITY_EVERY = 1_000_000
MAX_PARALLEL = 10_000
#: ``search.reevaluate``: leading λ sets re-run, and evaluations of each (the cost counts in n_trials).
MAX_REEVALUATE_TOP_K = 20
MAX_REEVALUATE_SEEDS = 20
MAX_AUX_TASKS = 64
#: A DataLoader's worker processes (``training.loader.num_workers``) and the batches each reads ahead.
MAX_LOADER_WORKERS = 64
MAX_PREFETCH_FACTOR = 64
MAX_GRAD_CLIP = 1e6
MAX_ACCUMULATE = 1_024

#: Aux task names: a metric (``val_loss:<task>``), a loss key and a trial param each; a ``.`` splits field
#: paths, and ``main``/``total`` are the main task's and the summed loss's keys.
AUX_TASK_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
RESERVED_TASK_NAMES: tuple[str, ...] = ("main", "total")

LearningRate = Annotated[float, Field(gt=0.0, le=MAX_LR)]
Temperature = Annotated[float, Field(ge=MIN_TEMPERATURE, le=MAX_TEMPERATURE)]


def check_task_name(name: str) -> str:
    """An aux task's name: a pydantic validator (``AuxTaskSpec.name``) whose refusal says what names work."""
    if not re.match(AUX_TASK_NAME_PATTERN, name):
        raise ValueError(f"{name!r} cannot name an aux task: use letters, digits, _ and - only, starting with a "
                         "letter or _ (rename the task, or the column it comes from)")
    if name in RESERVED_TASK_NAMES:
        raise ValueError(f"{name!r} is a reserved name (the main task's or the summed loss's); give the task "
                         "another name")
    return name


def unstorable_values(value: Any, loc: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """Numbers no store column or JSON document can hold: NaN/±Infinity (JSON parsers accept them) and
    integers beyond 64 bits (which cannot even be printed past 4 300 digits)."""
    if isinstance(value, float) and not math.isfinite(value):
        yield loc, "must be a finite number (NaN and Infinity are not allowed)"
    elif isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        yield loc, "is too large; give a number of at most 19 digits"
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, int) and not isinstance(key, bool) and not -(2**63) <= key < 2**63:
                yield loc, "has a key that is a huge number; keys are field names"
            else:
                yield from unstorable_values(item, [*loc, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from unstorable_values(item, [*loc, i])
