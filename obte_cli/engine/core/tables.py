"""The one TSV writer: every table obte writes (stdout or file) has one header row, tab separators,
``NA`` for missing values and ``\\n`` line ends, so shell pipelines and pandas read them alike."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pandas as pd

from obte_cli.engine.core.outputs import atomic_file


def write_tsv(table: pd.DataFrame, destination: str | Path | TextIO, float_format: str = "%.4f") -> None:
    """Write ``table`` (without its index) to an open text handle, or atomically to a path."""
    if isinstance(destination, (str, Path)):
        with atomic_file(destination) as handle:
            write_tsv(table, handle, float_format)
        return
    table.to_csv(destination, sep="\t", index=False, float_format=float_format, na_rep="NA", lineterminator="\n")
