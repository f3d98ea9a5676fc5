"""The one TSV writer and the one table reader.

Every table obte writes (stdout or file) has one header row, tab separators, ``NA`` for missing values and
``\\n`` line ends, so shell pipelines and pandas read them alike. Every table a user gives is read by
:func:`read_table`, so a missing, unreadable, truncated or garbled file gives the same one-line error in
every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pandas as pd

from obte_cli.engine.core.errors import InputError
from obte_cli.engine.core.inputs import COMPRESSED_STREAM_ERRORS
from obte_cli.engine.core.outputs import atomic_file

# What pandas raises on a file that is not the table it should be: a bad row, no header, bytes that are not
# UTF-8 (a compressed file, which pandas decompresses by name, that is truncated or garbled: COMPRESSED_STREAM_ERRORS).
_NOT_A_TABLE = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError)


def read_table(path: str | Path, kind: str = "TSV", **options) -> pd.DataFrame:
    """``pd.read_csv(path, sep="\\t", **options)`` (``kind`` "CSV": comma-separated), with every way a user's
    file can fail turned into one :class:`InputError` naming it: no such file, a directory, no permission,
    a corrupt or truncated compressed file, or not a table (empty, ragged, not UTF-8). Warnings pass through,
    so a caller can turn pandas' ``ParserWarning`` into its own error."""
    if kind == "TSV":
        options = {"sep": "\t", **options}
    try:
        return pd.read_csv(path, **options)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a file") from None
    except COMPRESSED_STREAM_ERRORS as exc:
        raise InputError(f"{path}: corrupt or truncated compressed file ({_first_line(exc)})") from None
    except OSError as exc:  # no permission, an I/O error
        raise InputError(f"{path}: cannot read ({exc.strerror or _first_line(exc)})") from None
    except _NOT_A_TABLE as exc:
        raise InputError(f"{path}: not a readable {kind} ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def write_tsv(table: pd.DataFrame, destination: str | Path | TextIO, float_format: str = "%.4f") -> None:
    """Write ``table`` (without its index) to an open text handle, or atomically to a path."""
    if isinstance(destination, (str, Path)):
        with atomic_file(destination) as handle:
            write_tsv(table, handle, float_format)
        return
    table.to_csv(destination, sep="\t", index=False, float_format=float_format, na_rep="NA", lineterminator="\n")
