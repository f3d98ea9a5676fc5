"""Writing safetensors files (model weights, composition ΔG models): a failed write is one line.

safetensors reports an operating-system error (a full disk, a quota, a file size limit) as a
``SafetensorError`` whose message ends in ``(os error N)``, not as an ``OSError``; this turns it into the
one-line error every other output gives (:func:`obte_cli.engine.core.outputs.cannot_write`)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from obte_cli.engine.core.outputs import cannot_write

_OS_ERROR = re.compile(r"\(os error (\d+)\)")


@contextlib.contextmanager
def safetensors_write_errors(shown: str | Path) -> Iterator[None]:
    """Inside the block, a safetensors write that fails on an OS error is :func:`cannot_write` naming
    ``shown`` (the file as the user knows it, not a staging path)."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as exc:
        match = _OS_ERROR.search(str(exc))
        if match is None:
            raise
        number = int(match[1])
        raise cannot_write(shown, OSError(number, os.strerror(number))) from None
