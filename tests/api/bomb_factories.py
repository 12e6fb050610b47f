"""Hostile table files, small on disk and huge when decoded: for the upload-limit tests and
``bench/upload_bombs.py``. Each writes its file in pieces, so even the bench's 40 M-row Parquet costs the
writer little memory. Columns are those of ``factories.csv_bytes`` (``weight``, ``large``, ``breed``), so a
file that passed the limits would be a valid upload."""

from __future__ import annotations

from pathlib import Path

_PIECE = 1_000_000


def constant_parquet(path: Path, rows: int) -> Path:
    """``rows`` identical rows: dictionary and run-length encoding shrink them to a few bytes per million."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def piece(n: int) -> pa.Table:
        return pa.table({"weight": pa.array([1.0] * n), "large": pa.array([0.5] * n),
                         "breed": pa.array(["husky"] * n)})

    full = piece(min(rows, _PIECE))
    with pq.ParquetWriter(path, full.schema, compression="zstd") as writer:
        left = rows
        while left > 0:
            writer.write_table(full if left >= _PIECE else piece(left), row_group_size=_PIECE)
            left -= _PIECE
    return path


def long_text_parquet(path: Path, rows: int, text_bytes: int) -> Path:
    """A ``breed`` label of ``text_bytes`` bytes on every row: one dictionary entry on disk, ``rows`` copies
    in memory if it were decoded naively."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"weight": pa.array([1.0] * rows),
                      "breed": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()),
                                                              pa.array(["x" * text_bytes]))})
    # store_schema=False: no Arrow schema saying "dictionary", so a reader sees a plain text column
    pq.write_table(table, path, compression="zstd", store_schema=False)
    return path


def wide_csv(path: Path, columns: int, rows: int = 3) -> Path:
    """A header of ``columns`` feature columns plus ``breed``, then ``rows`` rows of zeros."""
    with path.open("w") as f:
        f.write(",".join(f"c{i}" for i in range(columns)) + ",breed\n")
        row = "0," * columns + "husky\n"
        f.writelines(row for _ in range(rows))
    return path


def long_csv(path: Path, rows: int) -> Path:
    """``rows`` short rows under a three-column header."""
    with path.open("wb") as f:
        f.write(b"weight,large,breed\n")
        left = rows
        while left > 0:
            n = min(left, _PIECE)
            f.write(b"1,0,husky\n" * n)
            left -= n
    return path


def long_row_csv(path: Path, fields: int) -> Path:
    """A three-column header, then one row of ``fields`` fields (a tokenizer's worst case)."""
    with path.open("wb") as f:
        f.write(b"weight,large,breed\n")
        left = fields
        while left > 0:
            n = min(left, _PIECE)
            f.write(b"1," * n)
            left -= n
        f.write(b"husky\n")
    return path
