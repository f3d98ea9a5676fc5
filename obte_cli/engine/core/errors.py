"""Exceptions for mistakes a user can make (bad input files, wrong model directory, ...).

Each carries a one-line message that names the file and record concerned. The CLI prints the message
without a traceback and exits 1; any other exception is a bug in obte and keeps its traceback.
"""

from __future__ import annotations


class ObteError(Exception):
    """Base class for user-facing errors (exit code 1, no traceback)."""


class InputError(ObteError):
    """An input file or value is malformed or unsupported."""


class UnknownResidueError(InputError):
    """A sequence holds a letter outside the tokenizer's standard alphabet."""

    def __init__(self, record: str, position: int, letter: str, molecule: str):
        self.record = record
        self.position = position
        self.letter = letter
        self.molecule = molecule
        where = f"record '{record}'" if record else "sequence"
        super().__init__(
            f"{where}: non-standard {molecule} letter {letter!r} at position {position} "
            "(use --on-unknown unk to map such letters to <unk>)"
        )


class ModelFormatError(ObteError):
    """A model directory is missing files or its parts disagree."""
