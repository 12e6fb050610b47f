"""Shared set-up of the engine tests.

The models here are tiny, so torch's intra-op threads buy nothing; on a shared 2-core machine they spin
against other processes and one synthetic trial goes from 0.3 s to over a minute. One thread keeps the
suite fast and its timings stable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tuner.spec import StudySpec, parse_spec

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def synthetic_spec() -> Callable[..., StudySpec]:
    """Build a small synthetic-workload spec; keyword sections override the defaults given here."""

    def make(**overrides: Any) -> StudySpec:
        data: dict[str, Any] = {
            "name": "synthetic-test",
            "workload": {"name": "synthetic", "params": {"n_train": 200, "n_val": 200, "n_test": 400}},
            "aux_tasks": [{"name": "helpful", "loss": "bce"}, {"name": "harmful", "loss": "mse"}],
            "training": {"epochs": 3, "batch_size": 32, "lr": 0.003},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return parse_spec(data)

    return make
