"""Reading a ``table`` workload's CSV/Parquet file within bounds, so a small file cannot decode into gigabytes.

A Parquet file of constant values compresses by 10⁴ or more (a 2 MB upload of 40 M rows left the API at
4 GB), and a CSV's cost grows with its columns (a 300 000-column header took 19 s), so a file is measured
before it is decoded: a Parquet file by its footer (rows, leaf values, uncompressed bytes), a CSV by its header
line and a streamed count of its lines. Past a limit it is refused with a ``TableTooLarge`` saying which
limit and how to fit under it. The API (``api.datasets``, on upload) and the workers (``tuner.workloads.table``,
on every read, since an admin's spec may name a file by path) read through ``read_table``, so both apply the
same limits. Text columns of a Parquet file are read dictionary-encoded and their decoded size is checked
before they are expanded: a dictionary of one long string repeated on every row is small on disk only.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

MiB = 1024 * 1024
#: Most data rows of a table (a λ study trains every trial on all of them).
MAX_ROWS = 1_000_000
#: Most columns of a table.
MAX_COLUMNS = 10_000
#: Most cells (rows × columns): about 80 MB as float64, which bounds what reading and checking a table costs.
MAX_CELLS = 10_000_000
#: Most bytes a table's values decode to (Parquet: the footer's uncompressed size, and the text columns).
MAX_DECODED_BYTES = 256 * MiB
#: Longest CSV header line.
MAX_HEADER_BYTES = 1 * MiB
PARQUET_SUFFIXES = (".parquet", ".pq")
_CHUNK = 1 << 20
_FIX = "upload a sample of the rows or fewer columns"


class TableTooLarge(ValueError):
    """A table file past one of the limits; the message names the limit and the fix, never the file's path."""


def table_format(path: str | Path) -> str:
    """``"parquet"`` for a ``.parquet``/``.pq`` file, else ``"csv"`` (read uncompressed, whatever its suffix)."""
    return "parquet" if Path(path).suffix.lower() in PARQUET_SUFFIXES else "csv"


def read_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """The table in ``path`` (``fmt``: ``"csv"``/``"parquet"``, default by suffix), or ``TableTooLarge`` before
    anything large is decoded. Other read errors (pandas', pyarrow's) propagate."""
    fmt = fmt or table_format(path)
    if fmt == "parquet":
        return _read_parquet(Path(path))
    import pandas as pd

    _check_csv(Path(path))
    # compression=None: a ".csv.gz" path must not inflate past the limits measured on its compressed bytes
    return pd.read_csv(path, compression=None)


def check_csv_size(path: str | Path) -> None:
    """``TableTooLarge`` if the CSV file ``path`` is past the limits, measured without parsing it (a CSV inside an
    uploaded zip is measured so when the zip is unpacked)."""
    _check_csv(Path(path))


def _check_shape(rows: int, columns: int, about: str = "") -> None:
    if columns > MAX_COLUMNS:
        raise TableTooLarge(f"has {columns} columns; the limit is {MAX_COLUMNS}: {_FIX}")
    if rows > MAX_ROWS:
        raise TableTooLarge(f"has {about}{rows} rows; the limit is {MAX_ROWS}: {_FIX}")
    if rows * columns > MAX_CELLS:
        raise TableTooLarge(f"has {rows} rows × {columns} columns = {rows * columns} cells; the limit is "
                            f"{MAX_CELLS} cells: {_FIX}")


# -- CSV ---------------------------------------------------------------------------------------------------
def _check_csv(path: Path) -> None:
    """Columns from the header line; rows and fields from a streamed count of line ends and commas (quoted ones
    count too, so this may over-count, never under-count); nothing is parsed past the header."""
    with path.open("rb") as f:
        header = f.readline(MAX_HEADER_BYTES + 1)
        if len(header) > MAX_HEADER_BYTES:
            raise TableTooLarge(f"has a header line longer than {MAX_HEADER_BYTES} bytes; the limit is "
                                f"{MAX_COLUMNS} columns: {_FIX}")
        _check_shape(0, _csv_columns(header))
        lines, returns, commas, last = 0, 0, 0, b"\n"
        while chunk := f.read(_CHUNK):
            lines, returns = lines + chunk.count(b"\n"), returns + chunk.count(b"\r")
            commas += chunk.count(b",")
            last = chunk[-1:]
            if max(lines, returns) > MAX_ROWS:
                raise TableTooLarge(f"has more than {MAX_ROWS} rows; the limit is {MAX_ROWS}: {_FIX}")
            if commas > MAX_CELLS:  # rows longer than the header: the tokenizer's cost is its fields
                raise TableTooLarge(f"has more than {MAX_CELLS} fields; the limit is {MAX_CELLS} cells: {_FIX}")
        rows = max(lines, returns) + (last not in b"\r\n")  # "\r" alone ends lines too; a last row may lack one
    _check_shape(rows, _csv_columns(header), "about ")


def _csv_columns(header: bytes) -> int:
    text = header.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        return len(next(csv.reader([text]), []))
    except csv.Error:  # a field past csv's size limit: commas bound the columns from above
        return text.count(",") + 1


# -- Parquet -----------------------------------------------------------------------------------------------
def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    meta = parquet.metadata
    _check_shape(meta.num_rows, meta.num_columns)
    values = sum(meta.row_group(g).column(c).num_values for g in range(meta.num_row_groups)
                 for c in range(meta.num_columns))
    if values > MAX_CELLS:  # list columns hold many values per row
        raise TableTooLarge(f"holds {values} values; the limit is {MAX_CELLS} cells: {_FIX}")
    encoded = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    if encoded > MAX_DECODED_BYTES:
        raise TableTooLarge(f"decodes to {encoded} bytes; the limit is {MAX_DECODED_BYTES} bytes: {_FIX}")
    schema = parquet.schema_arrow
    texts = [f.name for f in schema if _is_text(f.type)]
    table = parquet.read(use_pandas_metadata=True) if not texts else pq.read_table(
        path, read_dictionary=texts, use_pandas_metadata=True)
    if texts:
        table = _expand_texts(table, texts)
    return table.to_pandas()


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
                or pa.types.is_large_binary(kind))


def _expand_texts(table: pa.Table, texts: list[str]) -> pa.Table:
    """``table`` with its dictionary-encoded text columns decoded, once their decoded size is known to fit."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for name in texts:
        for chunk in table.column(name).chunks:
            if not pa.types.is_dictionary(chunk.type):
                total += chunk.nbytes
                continue
            lengths = pc.binary_length(chunk.dictionary)
            total += int(pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0)
        if total > MAX_DECODED_BYTES:
            raise TableTooLarge(f"has text that decodes to more than {MAX_DECODED_BYTES} bytes; the limit is "
                                f"{MAX_DECODED_BYTES} bytes: {_FIX}")
    for name in texts:
        i = table.schema.get_field_index(name)
        kind = table.column(name).type
        if pa.types.is_dictionary(kind):
            table = table.set_column(i, name, table.column(name).cast(kind.value_type))
    return table
