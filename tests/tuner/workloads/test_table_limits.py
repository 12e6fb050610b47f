"""The ``table`` workload measures a file before decoding it, like the API does on upload: a spec naming a
bomb by path is refused on the field that names it, before a worker (or the spec checker) runs out of memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.api.bomb_factories import constant_parquet, long_text_parquet, wide_csv
from tuner.spec import SpecError, parse_spec
from tuner.workloads.table_files import MAX_COLUMNS, MAX_DECODED_BYTES, MAX_ROWS, read_table


def spec_errors(data: str) -> list[tuple[str, str]]:
    doc = {"name": "bomb", "workload": {"name": "table", "params": {"data": data, "label": "breed"}},
           "aux_tasks": [{"name": "large", "loss": "bce"}]}
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    return info.value.errors


def test_a_parquet_path_past_the_row_limit_is_refused_on_its_field(tmp_path: Path) -> None:
    [(field, msg)] = spec_errors(str(constant_parquet(tmp_path / "rows.parquet", MAX_ROWS + 1)))
    assert field == "workload.params.data"
    assert f"has {MAX_ROWS + 1} rows; the limit is {MAX_ROWS}" in msg


def test_a_wide_csv_path_is_refused_on_its_field(tmp_path: Path) -> None:
    [(field, msg)] = spec_errors(str(wide_csv(tmp_path / "wide.csv", MAX_COLUMNS)))
    assert field == "workload.params.data" and f"the limit is {MAX_COLUMNS}" in msg


def test_one_long_text_on_every_row_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    rows = MAX_DECODED_BYTES // (1 << 20) + 1
    bomb = long_text_parquet(tmp_path / "text.parquet", rows, 1 << 20)
    assert bomb.stat().st_size < 1 << 20 < MAX_DECODED_BYTES  # a megabyte once on disk, `rows` times decoded
    [(field, msg)] = spec_errors(str(bomb))
    assert field == "workload.params.data" and f"more than {MAX_DECODED_BYTES} bytes" in msg


def test_text_columns_under_the_limits_read_as_before(tmp_path: Path) -> None:
    frame = pd.DataFrame({"weight": [1.0, 2.0, 3.0], "breed": ["husky", "beagle", None]})
    frame.to_parquet(tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    assert back.dtypes.to_dict() == pd.read_parquet(tmp_path / "t.parquet").dtypes.to_dict()
    assert back["breed"].tolist()[:2] == ["husky", "beagle"] and back["breed"].isna().tolist() == [False, False, True]
