"""Field checks for the JSON files of model and tokenizer directories: each failure names its field.

:class:`SchemaError` is a ``ValueError`` carrying the field's dotted name within its section
(``n_heads``, ``thresholds``, ``components[0].offset``). The loaders
(:func:`obte_cli.engine.model.directory.load_model`, :mod:`obte_cli.engine.tokenizers.loading`) turn it
into a one-line :class:`~obte_cli.engine.core.errors.ModelFormatError` that also names the file and the
section (``m/config.json: architecture.n_heads must be a positive integer (got 0)``).

JSON has one number type, so the checks are strict about Python's: ``true`` is not an integer, ``4.0``
is not an integer, and ``NaN`` / ``Infinity`` (which Python's JSON reader accepts) are not finite.
"""

from __future__ import annotations

import math
import numbers

MISSING = object()


class SchemaError(ValueError):
    """A field has the wrong type or value. ``field`` is its dotted name, or "" when ``problem`` is a
    sentence about a whole section (``unknown architecture field(s): foo``)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}" if field else problem)

    def within(self, section: str) -> SchemaError:
        """The same error with ``section.`` in front of its field (``head`` + ``n_outputs``)."""
        if not self.field:
            return self
        joiner = "" if self.field.startswith("[") else "."
        return SchemaError(f"{section}{joiner}{self.field}", self.problem)


def shown(value: object) -> str:
    """``repr`` of a bad value for an error message, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(value: object, field: str, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum`` (1: positive, 0: non-negative)."""
    if not is_integer(value) or value < minimum:
        what = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer ≥ {minimum}")
        raise SchemaError(field, f"must be {what} (got {shown(value)})")
    return int(value)


def finite(value: object) -> float | None:
    """``value`` as a finite float, or None if it is not a finite number (booleans are not numbers)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def number(value: object, field: str, *, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 with ``positive``)."""
    number_ = finite(value)
    if number_ is None or (positive and number_ <= 0):
        raise SchemaError(field, f"must be a {'positive ' if positive else ''}finite number (got {shown(value)})")
    return number_


def fraction(value: object, field: str, *, upper_open: bool = False) -> float:
    """``value`` as a finite float in [0, 1] (or [0, 1) with ``upper_open``)."""
    number_ = finite(value)
    if number_ is None or number_ < 0 or number_ > 1 or (upper_open and number_ == 1):
        raise SchemaError(field, f"must be a number in [0, 1{')' if upper_open else ']'} (got {shown(value)})")
    return number_


def choice(value: object, field: str, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise SchemaError(field, f"must be one of {', '.join(allowed)} (got {shown(value)})")
    return value


def text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise SchemaError(field, f"must be a non-empty string (got {shown(value)})")
    return value


def boolean(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(field, f"must be true or false (got {shown(value)})")
    return value


def mapping(value: object, field: str) -> dict:
    if not isinstance(value, dict):
        raise SchemaError(field, f"must be a JSON object (got {json_type(value)})")
    return value


def sequence(value: object, field: str, *, non_empty: bool = True) -> list:
    if not isinstance(value, list) or (non_empty and not value):
        got = "an empty list" if isinstance(value, list) else json_type(value)
        raise SchemaError(field, f"must be a {'non-empty ' if non_empty else ''}list (got {got})")
    return value


def required(data: dict, key: str, default: object = MISSING) -> object:
    """``data[key]``; without a ``default``, a missing key is an error naming it."""
    if key in data:
        return data[key]
    if default is MISSING:
        raise SchemaError(key, "is missing")
    return default


def plain_file_name(value: object, field: str) -> str:
    """A file name inside the directory itself: no folders, no ``..``, not hidden."""
    name = text(value, field)
    if "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise SchemaError(field, f"must be a plain file name in the directory (got {shown(value)})")
    return name
