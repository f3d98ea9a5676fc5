"""What can go wrong with a file a user names, said the same way by every reader: a path that is not an
existing regular file, and a compressed stream (gzip, xz) that is truncated or not compressed at all."""

from __future__ import annotations

import gzip
import lzma
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
