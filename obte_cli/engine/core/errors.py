"""Exceptions for mistakes a user can make (bad input files, wrong model directory, ...).

Each carries a one-line message that names the file and record concerned. The CLI prints the message
without a traceback and exits 1; any other exception is a bug in obte and keeps its traceback.
"""

from __future__ import annotations


class ObteError(Exception):
    """Base class for user-facing errors (exit code 1, no traceback)."""

    def within(self, where: str):
        """The same error (same class and attributes) with ``where: `` put before its message: how a caller
        adds the file or split it was reading, without losing what kind of error it is."""
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.args = (f"{where}: {self.args[0]}" if self.args else str(where), *self.args[1:])
        return new


class InputError(ObteError):
    """An input file or value is malformed or unsupported."""


class UnknownResidueError(InputError):
    """A sequence holds a letter outside the tokenizer's standard alphabet.

    The message names record, position and letter. How to get past it depends on the command (most have
    ``--on-unknown unk``, some do not), so the engine leaves :attr:`hint` empty and a command that offers
    a way out sets it; it is shown in parentheses after the message."""

    def __init__(self, record: str, position: int, letter: str, molecule: str, message: str | None = None):
        self.record = record
        self.position = position
        self.letter = letter
        self.molecule = molecule
        self.hint = ""
        where = f"record '{record}'" if record else "sequence"
        super().__init__(message or f"{where}: non-standard {molecule} letter {letter!r} at position {position}")

    def __str__(self) -> str:
        return f"{self.args[0]} ({self.hint})" if self.hint else str(self.args[0])


class ModelFormatError(ObteError):
    """A model directory is missing files or its parts disagree."""
