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


class MissingDependencyError(ObteError):
    """An optional dependency (a pip extra) that the asked-for work needs is not installed."""


class ModelFormatError(ObteError):
    """A model directory is missing files or its parts disagree."""


class NonFiniteResultError(ObteError):
    """A model computed a number that is not finite (NaN or ±infinity) for a record: it is never written as
    a result. Weights are checked to be finite on load, so this is a model whose numbers overflow."""

    @classmethod
    def check(cls, values, model, record: str, what: str) -> None:
        """Raise unless every number of ``values`` (a number or an array) is finite; the message names
        ``model`` (a directory, or None for one built in memory), ``record`` and ``what`` was computed."""
        import numpy as np

        array = np.asarray(values)
        if not np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float64)
        if np.isfinite(array).all():
            return
        bad = array[~np.isfinite(array)].flat[0]
        where = f"{model}: " if model is not None else ""
        raise cls(
            f"{where}record '{record}': {what} is {bad} (not a finite number); the model's weights or "
            "activations overflow, so it is not written as a result"
        )
