"""The one TSV writer: every table obte writes (stdout or file) has one header row, tab separators,
``NA`` for missing values and ``\\n`` line ends, so shell pipelines and pandas read them alike."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import pandas as pd


def write_tsv(table: pd.DataFrame, destination: str | Path | TextIO, float_format: str = "%.4f") -> None:
    """Write ``table`` (without its index) to a path or an open text handle."""
    table.to_csv(destination, sep="\t", index=False, float_format=float_format, na_rep="NA", lineterminator="\n")
