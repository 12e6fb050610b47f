"""Store fixtures; the database fixtures (``db_url``, ``fresh_pg_url``, …) live in ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storage import Store


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    try:
        yield s
    finally:
        s.close()
