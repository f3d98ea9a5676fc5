"""How an engine loop reports progress without printing.

A long loop takes a ``progress`` argument: a :data:`ProgressFactory`, called as ``progress(total, label)``
(``total`` None when the amount of work is not known in advance), that returns a context manager yielding
an :data:`Advance` callback; the loop calls ``advance(n)`` as ``n`` more units of work are done (``n`` may be
a fraction: a record embedded in three windows advances by 1/3 per window). The commands pass one that
draws a bar or prints a line now and then (``obte_cli.commands.progress.work_progress``); the default,
:func:`no_progress`, does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

Advance = Callable[[float], None]
ProgressFactory = Callable[[float | None, str], AbstractContextManager[Advance]]


def _nothing(n: float = 1) -> None:
    return None


@contextlib.contextmanager
def no_progress(total: float | None = None, label: str = "") -> Iterator[Advance]:
    """A :data:`ProgressFactory` that shows nothing."""
    yield _nothing
