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


# -- zips (uploads of folders) ---------------------------------------------------------------------------------
def png_bytes(color: tuple[int, int, int] = (200, 40, 40), size: int = 8) -> bytes:
    """A small real PNG."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, "PNG")
    return out.getvalue()


def zip_bomb(path: Path, unpacked_bytes: int) -> Path:
    """One CSV entry of ``unpacked_bytes`` zeros, deflated about 1000:1 (written in pieces)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("pets/bomb.csv", "w", force_zip64=True) as f:
        piece = b"0" * _PIECE
        left = unpacked_bytes
        while left > 0:
            f.write(piece[:min(left, _PIECE)])
            left -= _PIECE
    return path


def wide_zip_bomb(path: Path, entries: int, entry_bytes: int = 1 << 20) -> Path:
    """``entries`` CSV entries of ``entry_bytes`` zeros each: each under the per-entry ratio floor, the whole far past
    the archive's ratio and size limits."""
    import zipfile

    data = b"0" * entry_bytes
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(entries):
            zf.writestr(f"pets/t{i}.csv", data)
    return path


def many_entries_zip(path: Path, entries: int) -> Path:
    """``entries`` empty folder entries: a central directory that would cost a Python object each."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        for i in range(entries):
            zf.writestr(f"d{i}/", b"")
    return path


def forged_size_zip(path: Path, unpacked_bytes: int = 4 << 20) -> Path:
    """A deflated entry whose central directory and local header claim 100 bytes where it inflates to
    ``unpacked_bytes``: only counting (and the checksum) while extracting can tell."""
    import struct
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pets/a.csv", b"1," * (unpacked_bytes // 2))
    raw = bytearray(path.read_bytes())
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<L", raw, local + 22, 100)  # uncompressed size in the local header
    struct.pack_into("<L", raw, central + 24, 100)  # and in the central directory
    path.write_bytes(bytes(raw))
    return path
