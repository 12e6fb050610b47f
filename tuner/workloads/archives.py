"""Unpacking an uploaded zip of a data folder without trusting it: every limit of an upload of folders is here.

A zip is measured before anything is extracted, from its end record and central directory (the entry count is
counted in a stream, so a directory of millions of entries costs nothing to refuse), and every entry is checked:
a relative path of plain names (no absolute path, drive, ``..``, ``.``, backslash or control character), a regular
file or a folder (no symbolic link, device or pipe, read from the entry's Unix mode), not encrypted, stored or
deflated, no duplicate (also none differing only in case, nor a file where a folder is), an image
(``.png``/``.jpg``/``.jpeg``) or a CSV table, and within the size and compression-ratio limits. While extracting,
the bytes written are counted again against what the directory declared (a lying directory stops there) and
against the total. Then each image is opened by Pillow (its header: a PNG or JPEG of at most ``MAX_IMAGE_PIXELS``,
``verify()``ed) and each CSV is measured like any uploaded table (``table_files.check_csv_size``).

``__MACOSX/`` folders and ``.DS_Store``/``Thumbs.db`` files (what zip tools of macOS and Windows add) are skipped.
A zip whose every entry lies in one top-level folder is that folder (``zip -r pets.zip pets`` holds ``pets/...``).
A refusal is an ``ArchiveRefused`` naming the entry (by its name in the zip) and the fix.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tuner.workloads.table_files import TableTooLarge, check_csv_size

MiB = 1024 * 1024
#: Most entries (files and folders) in one zip.
MAX_ENTRIES = 100_000
#: Most bytes all the files of a zip unpack to, and their highest ratio to the zip's own size.
MAX_UNPACKED_BYTES = 1024 * MiB
MAX_ARCHIVE_RATIO = 20
#: Most bytes one file of a zip unpacks to.
MAX_ENTRY_BYTES = 256 * MiB
#: Highest compression ratio (unpacked ÷ packed bytes) of an entry that unpacks to more than ``RATIO_FLOOR_BYTES``.
MAX_RATIO = 100
RATIO_FLOOR_BYTES = 1 * MiB
#: Longest entry name (characters) and deepest folder nesting.
MAX_NAME_CHARS = 400
MAX_DEPTH = 16
#: Most pixels (width × height) of one image, read from its header before it is decoded.
MAX_IMAGE_PIXELS = 4096 * 4096
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TABLE_SUFFIXES = (".csv",)
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_SKIPPED_NAMES = (".DS_Store", "Thumbs.db")
_CHUNK = 1 << 20
_EOCD, _EOCD64, _LOCATOR, _CENTRAL = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07", b"PK\x01\x02"


class ArchiveRefused(ValueError):
    """A zip that is not a data folder this service unpacks; the message names the entry and the fix."""


@dataclass
class FolderSummary:
    """What an unpacked folder holds: its image and CSV files (paths inside it, ``/``-separated)."""

    images: int = 0
    tables: list[str] = field(default_factory=list)
    #: Its top-level names, folders with a trailing ``/``.
    contents: list[str] = field(default_factory=list)
    unpacked_bytes: int = 0

    def as_meta(self) -> dict[str, object]:
        return {"images": self.images, "tables": self.tables[:100], "contents": self.contents[:100],
                "unpacked_bytes": self.unpacked_bytes}


def unpack(archive: Path, dest: Path, *, check_files: bool = True) -> FolderSummary:
    """Check the zip ``archive`` and unpack it into the new folder ``dest``; ``check_files``: also open every image
    with Pillow and measure every CSV (a worker unpacking bytes the API checked and whose digest it verified skips
    that). On any refusal ``dest`` is removed.

    Raises:
        ArchiveRefused: the zip breaks a limit or a rule; nothing is left at ``dest``.
    """
    with archive.open("rb") as f:
        _count_entries(f)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ArchiveRefused(f"cannot read it as a zip file: {exc}; upload a .zip of the folder") from None
    dest.mkdir()
    try:
        with zf:
            plan = _plan(zf.infolist(), archive.stat().st_size)
            summary = _extract(zf, plan, dest)
        if check_files:
            for info, parts in plan.items():
                _check_file(dest.joinpath(*parts), info.filename)
        return summary
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


# -- before extracting: the end record, the central directory ----------------------------------------------
def _count_entries(f: BinaryIO) -> int:
    """The entries of the central directory, counted a header at a time and refused past ``MAX_ENTRIES`` before
    ``zipfile`` builds an object per entry; an archive with data before or after its directory is refused."""
    end = f.seek(0, os.SEEK_END)
    tail_at = max(0, end - (22 + 65_535))
    f.seek(tail_at)
    tail = f.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise ArchiveRefused("is not a zip file (no end of central directory); upload a .zip of the folder")
    _, disk, cd_disk, _, declared, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    eocd_at = tail_at + at
    if disk or cd_disk:
        raise ArchiveRefused("is a multi-part zip; upload the folder as one .zip file")
    if 0xFFFF in (declared,) or 0xFFFFFFFF in (cd_size, cd_offset):  # zip64: the locator sits before the record
        if at < 20 or tail[at - 20:at - 16] != _LOCATOR:
            raise ArchiveRefused("is a damaged zip64 file (no locator); upload a .zip of the folder")
        (eocd_at,) = struct.unpack("<Q", tail[at - 12:at - 4])
        f.seek(eocd_at)
        record = f.read(56)
        if len(record) < 56 or record[:4] != _EOCD64:
            raise ArchiveRefused("is a damaged zip64 file; upload a .zip of the folder")
        declared, cd_size, cd_offset = struct.unpack("<3Q", record[32:56])
    if declared > MAX_ENTRIES:
        raise ArchiveRefused(f"has {declared} entries; the limit is {MAX_ENTRIES}: upload fewer files")
    if cd_offset + cd_size != eocd_at:
        raise ArchiveRefused("has data before or inside its central directory (a self-extracting or concatenated "
                             "file); upload a plain .zip of the folder")
    f.seek(cd_offset)
    count, left = 0, cd_size
    while left > 0:
        header = f.read(46)
        if len(header) < 46 or header[:4] != _CENTRAL:
            raise ArchiveRefused("has a damaged central directory; upload a .zip of the folder")
        name, extra, comment = struct.unpack("<3H", header[28:34])
        f.seek(name + extra + comment, os.SEEK_CUR)
        left -= 46 + name + extra + comment
        count += 1
        if count > MAX_ENTRIES:
            raise ArchiveRefused(f"has more than {MAX_ENTRIES} entries; the limit is {MAX_ENTRIES}: upload fewer "
                                 "files")
    return count


def _plan(infos: list[zipfile.ZipInfo], archive_bytes: int) -> dict[zipfile.ZipInfo, tuple[str, ...]]:
    """Each file entry to extract with its path inside the folder, once every entry passed every rule."""
    files: dict[zipfile.ZipInfo, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    folders: set[tuple[str, ...]] = set()
    total = 0
    for info in infos:
        name = info.filename
        shown = repr(name[:120])
        parts = _parts(name, shown)
        if parts[0] == "__MACOSX" or parts[-1] in _SKIPPED_NAMES:
            continue
        key = "/".join(parts).casefold()
        if key in seen:
            raise ArchiveRefused(f"has the entry {shown} twice (or two names that differ only in case: "
                                 f"{seen[key][:120]!r}); keep one")
        seen[key] = name
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            raise ArchiveRefused(f"entry {shown} is a symbolic link; zip the files themselves (zip without -y)")
        if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise ArchiveRefused(f"entry {shown} is not a regular file or folder; remove it")
        folders.update(parts[:i] for i in range(1, len(parts)))
        if info.is_dir() or kind == stat.S_IFDIR:
            folders.add(parts)
            continue
        if info.flag_bits & 0x1:
            raise ArchiveRefused(f"entry {shown} is encrypted; zip the folder without a password")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveRefused(f"entry {shown} uses compression method {info.compress_type}; zip it with deflate "
                                 "(the default of zip tools)")
        suffix = Path(parts[-1]).suffix.lower()
        if suffix not in IMAGE_SUFFIXES + TABLE_SUFFIXES:
            raise ArchiveRefused(f"entry {shown} is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a CSV table "
                                 "(.csv); remove it from the zip")
        if info.file_size > MAX_ENTRY_BYTES:
            raise ArchiveRefused(f"entry {shown} unpacks to {info.file_size} bytes; the limit is {MAX_ENTRY_BYTES} "
                                 "bytes a file")
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ArchiveRefused(f"entry {shown} is compressed {info.file_size / max(info.compress_size, 1):.0f}:1 "
                                 f"({info.compress_size} bytes to {info.file_size}); the limit is {MAX_RATIO}:1 (a "
                                 "zip bomb?)")
        total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise ArchiveRefused(f"unpacks to more than {MAX_UNPACKED_BYTES} bytes; the limit is "
                                 f"{MAX_UNPACKED_BYTES} bytes: upload fewer or smaller files")
        if total > RATIO_FLOOR_BYTES and total > MAX_ARCHIVE_RATIO * archive_bytes:
            raise ArchiveRefused(f"unpacks to more than {MAX_ARCHIVE_RATIO} times its {archive_bytes} bytes; the "
                                 f"limit is {MAX_ARCHIVE_RATIO}:1 for a whole zip (a zip bomb?)")
        files[info] = parts
    clash = [p for p in files.values() if p in folders]
    if clash:
        raise ArchiveRefused(f"has {'/'.join(clash[0])[:120]!r} as both a file and a folder; rename one")
    if not files:
        raise ArchiveRefused("holds no image or CSV file; zip the data folder itself")
    tops = {parts[0] for parts in files.values()}
    if len(tops) == 1 and all(len(parts) > 1 for parts in files.values()):  # one top-level folder: that folder
        files = {info: parts[1:] for info, parts in files.items()}
    return files


def _parts(name: str, shown: str) -> tuple[str, ...]:
    if len(name) > MAX_NAME_CHARS:
        raise ArchiveRefused(f"has an entry name longer than {MAX_NAME_CHARS} characters ({shown}...); shorten it")
    if any(ord(c) < 32 or c == "\x7f" for c in name) or "\\" in name:
        raise ArchiveRefused(f"entry {shown} has a control character or a backslash in its name; rename it")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveRefused(f"entry {shown} has an absolute path; zip with paths relative to the folder")
    parts = tuple(name[:-1].split("/") if name.endswith("/") else name.split("/"))
    if any(p in ("", ".", "..") for p in parts):
        raise ArchiveRefused(f"entry {shown} has an empty, '.' or '..' part in its path; zip with plain paths "
                             "inside the folder")
    if len(parts) > MAX_DEPTH:
        raise ArchiveRefused(f"entry {shown} is nested {len(parts)} deep; the limit is {MAX_DEPTH}")
    return parts


# -- extracting, counted -----------------------------------------------------------------------------------
def _extract(zf: zipfile.ZipFile, plan: dict[zipfile.ZipInfo, tuple[str, ...]], dest: Path) -> FolderSummary:
    summary, total = FolderSummary(), 0
    for info, parts in plan.items():
        shown = repr(info.filename[:120])
        target = dest.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with zf.open(info) as src, target.open("xb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > info.file_size or total > MAX_UNPACKED_BYTES:
                        raise ArchiveRefused(f"entry {shown} unpacks to more bytes than its directory says; "
                                             "the zip is damaged or forged")
                    out.write(chunk)
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
            if isinstance(exc, ArchiveRefused):
                raise
            raise ArchiveRefused(f"entry {shown} cannot be unpacked ({type(exc).__name__}: {exc}); the zip is "
                                 "damaged") from None
        if written != info.file_size:
            raise ArchiveRefused(f"entry {shown} unpacks to {written} bytes, not the {info.file_size} its directory "
                                 "says; the zip is damaged")
        if target.suffix.lower() in IMAGE_SUFFIXES:
            summary.images += 1
        else:
            summary.tables.append("/".join(parts))
    summary.unpacked_bytes = total
    summary.contents = sorted(p.name + ("/" if p.is_dir() else "") for p in dest.iterdir())
    summary.tables.sort()
    return summary


def _check_file(path: Path, shown_name: str) -> None:
    shown = repr(shown_name[:120])
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        try:
            check_csv_size(path)
        except TableTooLarge as exc:
            raise ArchiveRefused(f"table {shown} {exc}") from None
        return
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, (width, height) = im.format, im.size
                if fmt == _FORMATS[suffix] and width * height <= MAX_IMAGE_PIXELS:
                    im.verify()
    except Exception as exc:  # Pillow raises many types for input that is not an image
        raise ArchiveRefused(f"image {shown} cannot be read as an image ({type(exc).__name__}); remove it or "
                             "save it again as PNG or JPEG") from None
    if fmt != _FORMATS[suffix]:
        raise ArchiveRefused(f"image {shown} is a {fmt} file, not the {_FORMATS[suffix]} its name says; rename or "
                             "convert it")
    if width * height > MAX_IMAGE_PIXELS:
        raise ArchiveRefused(f"image {shown} is {width}×{height} pixels; the limit is {MAX_IMAGE_PIXELS} pixels: "
                             "resize it")


# -- packing (``auxtune submit`` of a folder param) --------------------------------------------------------
def pack(folder: Path, archive: Path) -> tuple[int, list[str]]:
    """Zip the images and CSV files under ``folder`` into ``archive``, with paths relative to it (images stored,
    CSVs deflated); hidden files and folders are left out. Returns (files packed, files left out: not images or
    CSVs)."""
    packed, left_out = 0, []
    with zipfile.ZipFile(archive, "w") as zf:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                inner = path.relative_to(folder).as_posix()
                suffix = path.suffix.lower()
                if name.startswith(".") or suffix not in IMAGE_SUFFIXES + TABLE_SUFFIXES:
                    left_out.append(inner)
                    continue
                method = zipfile.ZIP_DEFLATED if suffix in TABLE_SUFFIXES else zipfile.ZIP_STORED
                zf.write(path, inner, compress_type=method)
                packed += 1
    return packed, left_out
