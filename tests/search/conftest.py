from __future__ import annotations

import logging

import optuna
import pytest


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("tuner.search").setLevel(logging.WARNING)
