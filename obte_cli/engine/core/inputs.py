"""What can go wrong with a file a user names, said the same way by every reader: a path that is not an
existing regular file, a compressed stream (gzip, xz) that is truncated or not compressed at all, and a cell
of a table of numbers that is not a decimal number."""

from __future__ import annotations

import gzip
import lzma
import re
import zlib
from pathlib import Path

from obte_cli.engine.core.errors import InputError

# What reading a truncated or garbled gzip/xz stream raises (gzip.BadGzipFile: a .gz name on other bytes).
COMPRESSED_STREAM_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError)


def existing_file(path: str | Path) -> Path:
    """``path`` as a Path if it is a regular file; else an :class:`InputError` saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")
    if not path.is_file():
        raise InputError(f"{path}: no such file" if not path.exists() else f"{path}: not a regular file")
    return path


def refuse_special_file(path: str | Path, error: type[Exception] = InputError) -> None:
    """``error`` when ``path`` exists but is not a regular file (a FIFO, a device, a socket, a directory): opening
    a FIFO with no writer blocks for ever, so a file obte must read whole is checked before it is opened."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file (a FIFO or a device?)"
        raise error(f"{path}: is {kind}; expected a regular file")


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE | re.ASCII)


def decimal_number(cell: str | None) -> float:
    """The number a table cell writes in decimal (``-9.1``, ``1e-9``; NaN and infinity too, for the caller to
    refuse): ValueError for anything else, including what Python's ``float`` would read but a table of numbers
    does not hold (``1_000``, non-ASCII digits) and a missing cell (None)."""
    if cell is None or not _DECIMAL.fullmatch(cell.strip()):
        raise ValueError(cell)
    return float(cell)
